/*
 * berth-fsck: checks a store, and with --repair repairs it, beside a
 * running berthd or not. Exit status as fsck(8): 0 no errors, 1 errors
 * corrected, 4 errors left, 8 operational error. docs/FSCK.md lists the
 * problems it reports.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "berth/fsck.h"
#include "util/duration.h"
#include "util/progress.h"

#define EXIT_CLEAN      0
#define EXIT_CORRECTED  1
#define EXIT_LEFT       4
#define EXIT_OPERATION  8
#define EXIT_USAGE      16      /* fsck(8): usage or syntax error */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: berth-fsck --data DIR [--repair] [--json] [--jobs N]\n"
	    "                  [--upload-expiry DURATION] [--quiet]\n"
	    "  --data DIR        the store's data folder (berthd may be running)\n"
	    "  --repair          fix what can be fixed (docs/FSCK.md)\n"
	    "  --json            print the report as one JSON document\n"
	    "  --jobs N          hashing threads (default: one per CPU)\n"
	    "  --upload-expiry D uploads untouched for D are expired (default\n"
	    "                    24h; s, m, h, d suffixes; 0: never)\n"
	    "  --quiet           no progress bar\n"
	    "exit: 0 clean, 1 errors corrected, 4 errors left, 8 operational "
	    "error, 16 usage\n");
}

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
	progress_update(arg, done, total);
}

struct tally {
	unsigned errors, errors_left, repaired, warnings, notices;
};

static struct tally
count(const struct fsck_report *r)
{
	struct tally t = { 0 };

	for (size_t i = 0; i < r->nproblems; i++) {
		const struct fsck_problem *p = &r->problems[i];

		bool fixed = p->state == FSCK_REPAIRED ||
		    p->state == FSCK_RESOLVED;

		if (fixed)
			t.repaired++;
		switch (p->severity) {
		case FSCK_ERROR:
			t.errors++;
			if (!fixed)
				t.errors_left++;
			break;
		case FSCK_WARNING:
			t.warnings++;
			break;
		case FSCK_NOTICE:
			t.notices++;
			break;
		}
	}
	return t;
}

static int
exit_code(const struct fsck_report *r)
{
	struct tally t = count(r);

	if (t.errors_left > 0)
		return EXIT_LEFT;
	return t.errors > 0 ? EXIT_CORRECTED : EXIT_CLEAN;
}

static const char *
repair_line(const struct fsck_problem *p, bool repair)
{
	switch (p->state) {
	case FSCK_REPAIRED:
		return "repaired";
	case FSCK_RESOLVED:
		return "resolved by the other repairs";
	case FSCK_SKIPPED:
		return "not repaired: the store changed meanwhile; run again";
	case FSCK_FAILED:
		return "repair failed";
	case FSCK_FOUND:
		break;
	}
	if (p->action == NULL)
		return "no automatic repair";
	return repair ? "not repaired" : "repair with --repair";
}

static void
print_text(const char *path, const struct fsck_report *r, bool repair)
{
	struct tally t = count(r);
	char hb[16];

	for (size_t i = 0; i < r->nproblems; i++) {
		const struct fsck_problem *p = &r->problems[i];

		printf("%-7s %s: %s: %s\n", fsck_severity_name(p->severity),
		    p->id, p->object, p->detail);
		if (p->nimages > 0) {
			printf("        images:");
			for (size_t j = 0; j < p->nimages; j++)
				printf("%s %s", j ? "," : "", p->images[j]);
			printf("\n");
		}
		if (p->action != NULL || p->state != FSCK_FOUND)
			printf("        %s%s%s\n", repair_line(p, repair),
			    p->action != NULL ? ": " : "",
			    p->action != NULL ? p->action : "");
	}
	printf("berth-fsck: %s: %" PRIu64 " blobs (%s hashed in %.1f s), %"
	    PRIu64 " uploads, %" PRIu64 " manifests, %" PRIu64 " tags, %"
	    PRIu64 " repositories\n", path, r->blobs,
	    progress_bytes(r->bytes_hashed, hb, sizeof(hb)), r->seconds,
	    r->uploads, r->manifests, r->tags, r->repos);
	printf("berth-fsck: %u errors (%u left), %u warnings, %u notices, "
	    "%u repaired\n", t.errors, t.errors_left, t.warnings, t.notices,
	    t.repaired);
}

/*
 * A JSON string of s; bytes that are not UTF-8 (a stored name or media
 * type quoted in a detail) become \xNN text rather than losing the line.
 */
static json_t *
jstr(const char *s)
{
	json_t *j = json_string(s);
	char *e;
	size_t n = 0;

	if (j != NULL)
		return j;
	e = malloc(4 * strlen(s) + 1);
	if (e == NULL)
		return json_string("");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (size_t)(*p < 0x80 ? sprintf(e + n, "%c", *p) :
		    sprintf(e + n, "\\x%02x", *p));
	e[n] = '\0';
	j = json_string(e);
	free(e);
	return j != NULL ? j : json_string("");
}

static int
print_json(const char *path, const struct fsck_report *r)
{
	struct tally t = count(r);
	json_t *doc, *probs;
	int rc;

	probs = json_array();
	for (size_t i = 0; probs != NULL && i < r->nproblems; i++) {
		const struct fsck_problem *p = &r->problems[i];
		json_t *imgs = json_array();

		for (size_t j = 0; imgs != NULL && j < p->nimages; j++)
			json_array_append_new(imgs, jstr(p->images[j]));
		json_array_append_new(probs, json_pack("{s:s,s:s,s:o,s:o,s:o,"
		    "s:o,s:s}", "id", p->id, "severity",
		    fsck_severity_name(p->severity), "object", jstr(p->object),
		    "detail", jstr(p->detail), "images", imgs != NULL ? imgs :
		    json_array(), "repair", p->action != NULL ?
		    json_string(p->action) : json_null(), "state",
		    fsck_state_name(p->state)));
	}
	doc = json_pack("{s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f},s:o,"
	    "s:{s:i,s:i,s:i,s:i,s:i},s:i}", "store", jstr(path),
	    "checked", "blobs", (json_int_t)r->blobs,
	    "chunks", (json_int_t)r->chunks, "uploads", (json_int_t)r->uploads,
	    "manifests", (json_int_t)r->manifests, "tags", (json_int_t)r->tags,
	    "repositories", (json_int_t)r->repos, "links", (json_int_t)r->links,
	    "bytes_hashed", (json_int_t)r->bytes_hashed, "seconds", r->seconds,
	    "problems", probs != NULL ? probs : json_array(),
	    "summary", "errors", (int)t.errors, "errors_left",
	    (int)t.errors_left, "warnings", (int)t.warnings, "notices",
	    (int)t.notices, "repaired", (int)t.repaired,
	    "exit", exit_code(r));
	if (doc == NULL)
		return -1;
	rc = json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
	return rc;
}

int
main(int argc, char **argv)
{
	struct store_options so = { .flags = STORE_OPEN_READONLY };
	struct fsck_options fo = { .upload_expiry = FSCK_UPLOAD_EXPIRY_DEFAULT };
	struct fsck_report rep;
	struct progress pr;
	struct store *st = NULL;
	bool repair = false, json = false, quiet = false;
	int rc, code;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--data") == 0 && v != NULL) {
			so.path = v;
			i++;
		} else if (strcmp(a, "--repair") == 0) {
			repair = true;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(a, "--jobs") == 0 && v != NULL) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);

			if (*v < '1' || *v > '9' || *end != '\0' || n > 256) {
				fprintf(stderr, "berth-fsck: --jobs: not a "
				    "number from 1 to 256: %s\n", v);
				return EXIT_USAGE;
			}
			fo.jobs = (unsigned)n;
			i++;
		} else if (strcmp(a, "--upload-expiry") == 0 && v != NULL) {
			if (duration_parse(v, &fo.upload_expiry) != 0) {
				fprintf(stderr, "berth-fsck: --upload-expiry: not "
				    "a duration (like 90s, 30m, 24h, 7d): %s\n", v);
				return EXIT_USAGE;
			}
			i++;
		} else if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return EXIT_CLEAN;
		} else {
			fprintf(stderr, "berth-fsck: unknown or incomplete "
			    "argument: %s\n", a);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (so.path == NULL) {
		fprintf(stderr, "berth-fsck: --data DIR is required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (repair)
		so.flags = 0;   /* read-write, never create */
	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, "berth-fsck: %s: %s\n", so.path,
		    store_strerror(rc));
		return EXIT_OPERATION;
	}
	progress_init(&pr, "berth-fsck: hashing", quiet);
	fo.progress = on_progress;
	fo.progress_arg = &pr;
	rc = store_fsck(st, &fo, &rep);
	progress_end(&pr);
	if (rc != 0) {
		fprintf(stderr, "berth-fsck: %s: check failed: %s\n", so.path,
		    store_strerror(rc));
		store_close(st);
		return EXIT_OPERATION;
	}
	if (repair) {
		rc = store_fsck_repair(st, &rep);
		if (rc == 0)
			rc = store_fsck_recheck(st, &fo, &rep);
		if (rc != 0) {
			fprintf(stderr, "berth-fsck: %s: repair failed: %s\n",
			    so.path, store_strerror(rc));
			fsck_report_free(&rep);
			store_close(st);
			return EXIT_OPERATION;
		}
	}
	store_close(st);
	code = exit_code(&rep);
	if (json) {
		if (print_json(so.path, &rep) != 0) {
			fprintf(stderr, "berth-fsck: cannot write the report\n");
			code = EXIT_OPERATION;
		}
	} else {
		print_text(so.path, &rep, repair);
	}
	fsck_report_free(&rep);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "berth-fsck: writing the report: %s\n",
		    strerror(errno));
		return EXIT_OPERATION;
	}
	return code;
}
