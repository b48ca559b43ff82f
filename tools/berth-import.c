/*
 * berth-import: loads docker save and OCI image layout archives into a
 * store (docs/IMPORT.md). Opens the store read-write beside a running
 * berthd (LMDB serializes the two writers). Each FILE is one import:
 * either all of its images appear, tags last, or none does. SIGINT,
 * SIGTERM and SIGHUP before an archive's commit starts stop it like a bad
 * archive (every upload it started is cancelled); the archives not yet
 * begun are reported as not imported and the exit status is 1.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/import.h"
#include "berth/store.h"
#include "util/progress.h"

#define PROG "berth-import"

/* Lock-free on every platform berth builds on, so a handler may set it. */
static atomic_int stop;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " --data DIR [options] FILE...\n"
	    "Loads image archives into a berth store: docker save archives\n"
	    "(classic and Docker 25+), podman save, skopeo docker-archive: and\n"
	    "oci-archive:, berth-export. FILE - reads standard input.\n"
	    "\n"
	    "  --data DIR            the store's data folder (opened read-write;\n"
	    "                        berthd may be running on it)\n"
	    "  --repo REPO           repository for images named by a tag only\n"
	    "                        or not at all\n"
	    "  --repo-prefix P       put every repository under P/ (REPO too)\n"
	    "  -q, --quiet           no progress bar\n"
	    "  --help                this text\n"
	    "\n"
	    "A leading registry host is dropped from names:\n"
	    "docker.io/library/alpine:3 is imported as library/alpine:3.\n"
	    "Existing tags are moved. One line per image on standard output.\n"
	    "Works on the store directly: blobs already in the store that an\n"
	    "archive names are linked into its repositories; berthd's access\n"
	    "rules do not apply.\n"
	    "Exit status: 0 imported, 1 refused, interrupted or failed, 2 bad\n"
	    "arguments. A refused or interrupted archive changes nothing. A\n"
	    "crash while reading leaves open uploads (berth-fsck --repair removes\n"
	    "them after --upload-expiry); a store error or crash while committing\n"
	    "can leave blobs linked that no manifest uses yet and manifests\n"
	    "stored untagged, never a tag on an incomplete image.\n");
}

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

struct source {
	int fd;
	int err;
};

static int
fd_source(void *arg, void *buf, size_t len, size_t *nread)
{
	struct source *s = arg;
	ssize_t n;

	for (;;) {
		if (atomic_load(&stop)) {
			s->err = EINTR;
			return -1;
		}
		n = read(s->fd, buf, len);
		if (n >= 0)
			break;
		if (errno != EINTR) {
			s->err = errno;
			return -1;
		}
	}
	*nread = (size_t)n;
	return 0;
}

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
	progress_update(arg, done, total);
}

struct bar {
	struct progress pr;
	uint64_t total;
};

static void
bar_progress(void *arg, uint64_t done, uint64_t total)
{
	struct bar *b = arg;

	(void)total;
	on_progress(&b->pr, done, b->total >= done ? b->total : 0);
}

/* arg is the bar: cleared first, so the line does not land on it. */
static void
on_image(void *arg, const char *name, const struct oci_digest *d)
{
	char ds[OCI_DIGEST_STR_BYTES];

	if (arg != NULL)
		progress_end(arg);
	oci_digest_format(d, ds);
	printf(PROG ": imported %s %s\n", name, ds);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	/*
	 * An import queues up to IMPORT_PENDING_MAX_BYTES anyway; larger
	 * groups than berthd's commit it with fewer syncs.
	 */
	struct store_options so = { .flags = 0,
	    .batch_bytes = (size_t)4 << 20 };
	struct import_options io = { .image = on_image, .stop = &stop };
	struct sigaction sa;
	struct store *st = NULL;
	const char **files = NULL;
	size_t nfiles = 0;
	bool quiet = false;
	char why[1024];
	int rc, status = 1;

	files = calloc((size_t)argc, sizeof(*files));
	if (files == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--data") == 0 && i + 1 < argc) {
			so.path = argv[++i];
		} else if (strcmp(a, "--repo") == 0 && i + 1 < argc) {
			io.repo = argv[++i];
		} else if (strcmp(a, "--repo-prefix") == 0 && i + 1 < argc) {
			io.repo_prefix = argv[++i];
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
			files[nfiles++] = a;
		}
	}
	if (so.path == NULL || nfiles == 0) {
		fprintf(stderr, PROG ": --data and at least one FILE are needed "
		    "(see --help)\n");
		status = 2;
		goto out;
	}
	if (io.repo != NULL && !oci_name_valid(io.repo, strlen(io.repo))) {
		fprintf(stderr, PROG ": --repo %s: not a repository name\n",
		    io.repo);
		status = 2;
		goto out;
	}
	if (io.repo_prefix != NULL && !oci_name_valid(io.repo_prefix,
	    strlen(io.repo_prefix))) {
		fprintf(stderr, PROG ": --repo-prefix %s: not a repository "
		    "name\n", io.repo_prefix);
		status = 2;
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++)
		if (strcmp(files[i], "-") == 0 && isatty(STDIN_FILENO)) {
			fprintf(stderr, PROG ": refusing to read an archive "
			    "from a terminal\n");
			status = 2;
			goto out;
		}
	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s: %s\n", so.path, store_strerror(rc));
		goto out;
	}
	/* No SA_RESTART: a blocked read returns so the import can stop. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	status = 0;
	for (size_t i = 0; i < nfiles; i++) {
		struct source s = { .fd = STDIN_FILENO };
		struct bar b = { .total = 0 };
		const char *name = strcmp(files[i], "-") == 0 ?
		    "standard input" : files[i];
		struct stat sb;

		if (atomic_load(&stop)) {
			fprintf(stderr, PROG ": %s: not imported: "
			    "interrupted\n", name);
			status = 1;
			continue;
		}
		if (strcmp(files[i], "-") != 0) {
			s.fd = open(files[i], O_RDONLY | O_CLOEXEC);
			if (s.fd < 0) {
				fprintf(stderr, PROG ": %s: %s\n", files[i],
				    strerror(errno));
				status = 1;
				continue;
			}
		}
		if (fstat(s.fd, &sb) == 0 && S_ISREG(sb.st_mode))
			b.total = (uint64_t)sb.st_size;
		progress_init(&b.pr, PROG ": reading", quiet);
		io.progress = bar_progress;
		io.progress_arg = &b;
		io.image_arg = &b.pr;
		rc = import_archive(st, &io, fd_source, &s, why, sizeof(why));
		progress_end(&b.pr);
		if (s.fd != STDIN_FILENO)
			close(s.fd);
		if (rc == IMPORT_E_READ && (atomic_load(&stop) ||
		    s.err == EINTR))
			fprintf(stderr, PROG ": %s: interrupted; nothing "
			    "imported\n", name);
		else if (rc == IMPORT_E_READ && s.err != 0)
			fprintf(stderr, PROG ": %s: read error: %s; nothing "
			    "imported\n", name, strerror(s.err));
		else if (rc == IMPORT_E_READ)
			fprintf(stderr, PROG ": %s: %s\n", name,
			    why[0] != '\0' ? why : import_strerror(rc));
		else if (rc != 0)
			fprintf(stderr, PROG ": %s: %s\n", name,
			    why[0] != '\0' ? why : import_strerror(rc));
		if (rc != 0)
			status = 1;
	}
out:
	store_close(st);
	free(files);
	return status;
}
