/*
 * Replays fuzz inputs without libFuzzer, so every target runs in
 * `make check` over its seed corpus: each argument is a file or a folder
 * of files; with none, $srcdir/tests/fuzz/corpus/NAME for a program named
 * fuzz_NAME. Prints TAP: one line for the whole corpus.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_INPUT_MAX_BYTES (16u << 20)

static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t n;

	if (f == NULL)
		return -1;
	buf = malloc(DRIVER_INPUT_MAX_BYTES);
	if (buf == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, DRIVER_INPUT_MAX_BYTES, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	char deflt[4096];
	char *defargv[3] = { argv[0], deflt, NULL };
	const char *name = strrchr(argv[0], '/');
	const char *srcdir = getenv("srcdir");
	int count = 0, bad = 0;

	if (argc < 2) {
		name = name != NULL ? name + 1 : argv[0];
		if (strncmp(name, "fuzz_", 5) == 0)
			name += 5;
		snprintf(deflt, sizeof(deflt), "%s/tests/fuzz/corpus/%s",
		    srcdir != NULL ? srcdir : ".", name);
		argv = defargv;
		argc = 2;
	}

	for (int i = 1; i < argc; i++) {
		struct stat sb;
		DIR *dir;
		struct dirent *e;

		if (stat(argv[i], &sb) != 0) {
			bad++;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			bad += run_file(argv[i]) != 0;
			count++;
			continue;
		}
		dir = opendir(argv[i]);
		if (dir == NULL) {
			bad++;
			continue;
		}
		while ((e = readdir(dir)) != NULL) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			bad += run_file(path) != 0;
			count++;
		}
		closedir(dir);
	}
	printf("1..1\n%s 1 - %s: %d inputs replayed\n",
	    bad == 0 && count > 0 ? "ok" : "not ok", argv[0], count);
	return 0;
}
