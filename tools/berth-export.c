/*
 * berth-export: writes images of a store as one archive that docker load,
 * podman load and skopeo read (docs/EXPORT.md). Opens the store read-only,
 * so it runs beside berthd. With -o FILE it writes a new temporary file
 * FILE.tmp.XXXXXX (mkstemp: never an existing file or a symbolic link, and
 * never shared by two exports) in the same folder, syncs it, renames it to
 * FILE on success and syncs the folder; on any failure, or when
 * interrupted, the temporary file is removed and FILE is left as it was.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/export.h"
#include "berth/store.h"
#include "util/progress.h"

#define PROG "berth-export"

/* The temporary file, for the signal handler to remove once it exists. */
static char *volatile tmp_path;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " --data DIR -o FILE|- [options] IMAGE...\n"
	    "Writes images of a berth store as one tar archive that is both an\n"
	    "OCI image layout and a docker save archive (docker/podman load,\n"
	    "skopeo docker-archive: and oci-archive:).\n"
	    "\n"
	    "  IMAGE                 REPO:TAG, REPO@sha256:HEX, or REPO (REPO:latest)\n"
	    "  --data DIR            the store's data folder (opened read-only)\n"
	    "  -o, --output FILE|-   the archive; - for standard output\n"
	    "  --platform OS/ARCH[/VARIANT]\n"
	    "                        the image taken from a multi-platform index\n"
	    "                        (default: this host's, e.g. linux/amd64)\n"
	    "  --all-platforms       keep whole indexes: every platform's image;\n"
	    "                        manifest.json lists the --platform one\n"
	    "  --uncompressed        decompressed layers named by their diff_ids\n"
	    "                        and a new manifest, as classic docker save\n"
	    "  -q, --quiet           no progress bar\n"
	    "  --help                this text\n"
	    "\n"
	    "The chosen platform of each image is reported on standard error.\n"
	    "Exit status: 0 written, 1 failed (no file left), 2 bad arguments.\n");
}

static void
on_signal(int sig)
{
	if (tmp_path != NULL)
		unlink(tmp_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* fsyncs the folder that holds path; 0 or -1 with errno. */
static int
sync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1, e;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		e = errno;
		close(fd);
		errno = e;
	}
	free(copy);
	return rc;
}

struct sink {
	int fd;
	int err;        /* errno of the failed write */
	uint64_t bytes; /* written so far, for the bar */
	struct progress pr;
};

static int
fd_sink(void *arg, const void *buf, size_t len)
{
	struct sink *k = arg;
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(k->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			k->err = n < 0 ? errno : EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		k->bytes += (uint64_t)n;
	}
	/* The archive's size is not known ahead: bytes and rate, no ETA. */
	progress_update(&k->pr, k->bytes, 0);
	return 0;
}

/* The bar is cleared first so that a note never shares its line. */
static void
print_note(void *arg, const char *line)
{
	struct sink *k = arg;

	progress_end(&k->pr);
	fprintf(stderr, PROG ": %s\n", line);
}

int
main(int argc, char **argv)
{
	struct store_options so = { .flags = STORE_OPEN_READONLY };
	struct sink k = { .fd = -1 };
	struct export_options eo = { .note = print_note, .note_arg = &k };
	struct export_platform plat;
	struct export_ref ref;
	struct store *st = NULL;
	const char *out = NULL, **images = NULL;
	char why[1024];
	size_t nimages = 0;
	bool quiet = false;
	int fd = -1, rc, status = 1;
	char *t;

	images = calloc((size_t)argc, sizeof(*images));
	if (images == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--data") == 0 && i + 1 < argc) {
			so.path = argv[++i];
		} else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) &&
		    i + 1 < argc) {
			out = argv[++i];
		} else if (strcmp(a, "--platform") == 0 && i + 1 < argc) {
			a = argv[++i];
			if (export_platform_parse(a, strlen(a), &plat) != 0) {
				fprintf(stderr, PROG ": bad --platform %s: want "
				    "OS/ARCH[/VARIANT], e.g. linux/arm64/v8\n", a);
				status = 2;
				goto out;
			}
			eo.platform = &plat;
		} else if (strcmp(a, "--all-platforms") == 0) {
			eo.all_platforms = true;
		} else if (strcmp(a, "--uncompressed") == 0) {
			eo.uncompressed = true;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			status = 0;
			goto out;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, PROG ": unknown argument: %s (see --help)\n",
			    a);
			status = 2;
			goto out;
		} else {
			if (export_ref_parse(a, strlen(a), &ref) != 0) {
				fprintf(stderr, PROG ": bad image %s: want REPO:TAG "
				    "or REPO@sha256:HEX\n", a);
				status = 2;
				goto out;
			}
			images[nimages++] = a;
		}
	}
	if (so.path == NULL || out == NULL || nimages == 0) {
		fprintf(stderr, PROG ": --data, -o and at least one IMAGE are "
		    "needed (see --help)\n");
		status = 2;
		goto out;
	}
	if (eo.uncompressed && eo.all_platforms) {
		fprintf(stderr, PROG ": --uncompressed and --all-platforms do "
		    "not combine\n");
		status = 2;
		goto out;
	}
	if (strcmp(out, "-") == 0 && isatty(STDOUT_FILENO)) {
		fprintf(stderr, PROG ": refusing to write an archive to a "
		    "terminal; use -o FILE or a pipe\n");
		status = 2;
		goto out;
	}
	eo.images = images;
	eo.nimages = nimages;

	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s: %s\n", so.path, store_strerror(rc));
		goto out;
	}
	/* A closed pipe is a write error to report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(out, "-") == 0) {
		fd = STDOUT_FILENO;
	} else {
		size_t n = strlen(out) + sizeof(".tmp.XXXXXX");
		char *p = malloc(n);
		sigset_t all, old;

		if (p == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
		snprintf(p, n, "%s.tmp.XXXXXX", out);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		/* The handler sees no file, or one whose name it may remove. */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		fd = mkstemp(p);
		if (fd >= 0)
			tmp_path = p;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (fd < 0) {
			fprintf(stderr, PROG ": %s: %s\n", p, strerror(errno));
			free(p);
			goto out;
		}
		/* mkstemp makes 0600; an archive is as readable as a save. */
		if (fchmod(fd, 0644) != 0) {
			fprintf(stderr, PROG ": %s: %s\n", p, strerror(errno));
			goto out;
		}
	}
	k.fd = fd;
	progress_init(&k.pr, PROG ": writing", quiet);
	rc = export_write(st, &eo, fd_sink, &k, why, sizeof(why));
	progress_end(&k.pr);
	if (rc == 0 && fd != STDOUT_FILENO && fsync(fd) != 0) {
		k.err = errno;
		rc = EXPORT_E_WRITE;
		snprintf(why, sizeof(why), "writing the archive failed");
	}
	if (rc != 0) {
		if (rc == EXPORT_E_WRITE && k.err != 0)
			fprintf(stderr, PROG ": %s: %s: %s\n", why,
			    fd == STDOUT_FILENO ? "standard output" : tmp_path,
			    strerror(k.err));
		else
			fprintf(stderr, PROG ": %s\n", why[0] != '\0' ? why :
			    export_strerror(rc));
		status = rc == EXPORT_E_INVALID ? 2 : 1;
		goto out;
	}
	if (fd != STDOUT_FILENO) {
		if (close(fd) != 0) {
			fd = -1;
			fprintf(stderr, PROG ": %s: %s\n", tmp_path,
			    strerror(errno));
			goto out;
		}
		fd = -1;
		if (rename(tmp_path, out) != 0) {
			fprintf(stderr, PROG ": %s: %s\n", out, strerror(errno));
			goto out;
		}
		t = tmp_path;
		tmp_path = NULL;
		free(t);
		/* The rename is durable only once the folder is synced. */
		if (sync_parent(out) != 0) {
			fprintf(stderr, PROG ": %s: syncing its folder: %s\n",
			    out, strerror(errno));
			goto out;
		}
	}
	status = 0;
out:
	if (fd >= 0 && fd != STDOUT_FILENO)
		close(fd);
	if (tmp_path != NULL) {
		unlink(tmp_path);
		t = tmp_path;
		tmp_path = NULL;
		free(t);
	}
	store_close(st);
	free(images);
	return status;
}
