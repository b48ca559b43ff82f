/*
 * Options as one table: each entry is a long command-line option and the
 * key of the same name in a configuration file, with its type, limits,
 * default and help. The same table parses both, prints --help and writes
 * the configuration file's manual page, so they cannot drift apart.
 *
 * Configuration file: one `key = value` per line; `#` starts a comment
 * anywhere on a line (so no value holds one); blank lines are ignored; a
 * list option may be given on several lines; a flag takes true/false (or
 * yes/no, on/off, 1/0). Values are taken as they are between the `=` and
 * a comment, surrounding blanks removed.
 */
#ifndef BERTH_OPTIONS_H
#define BERTH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OPT_LIST_MAX            8
#define OPT_FILE_MAX_BYTES      ((size_t)1 << 20)
#define OPT_LINE_MAX_BYTES      4096

enum opt_type {
	OPT_STRING,     /* const char * */
	OPT_LIST,       /* struct opt_list */
	OPT_UINT,       /* uint64_t within [min, max] */
	OPT_DURATION,   /* uint64_t seconds within [min, max]: 90, 30s, 5m, 1h, 7d */
	OPT_FLAG,       /* bool; no value on the command line */
	OPT_ENUM,       /* const char *, one of choices */
};

struct opt_list {
	const char *v[OPT_LIST_MAX];
	size_t n;
};

struct opt {
	const char *name;               /* "max-uploads": --max-uploads, max-uploads = */
	enum opt_type type;
	size_t offset;                  /* of the value in the caller's struct */
	uint64_t min, max;              /* OPT_UINT, OPT_DURATION */
	const char *const *choices;     /* OPT_ENUM, NULL-terminated */
	const char *arg;                /* value's name in help: N, FILE, ADDR:PORT */
	const char *def;                /* default, as the manual states it */
	const char *help;               /* one line for --help */
	const char *doc;                /* the manual's paragraph */
	bool cli_only;                  /* not a file key (--config itself) */
};

/*
 * Sets option o (its value text val; NULL for a flag given on the command
 * line) in conf. 0, or -1 with the reason in why.
 */
int opt_set(const struct opt *o, void *conf, const char *val, char *why,
    size_t whysize);

/* The entry named name (len bytes) of a table ending in a NULL name. */
const struct opt *opt_find(const struct opt *table, const char *name,
    size_t len);

/*
 * Reads a configuration file into conf (values are copied). 0, or -1 with
 * "FILE:LINE: reason" in why.
 */
int opt_load_file(const struct opt *table, void *conf, const char *path,
    char *why, size_t whysize);

/* Prints the options for --help. */
void opt_usage(const struct opt *table, FILE *f);

/* Prints the configuration file's manual page (mdoc), berthd.conf(5). */
void opt_mdoc(const struct opt *table, FILE *f, const char *name,
    const char *date);

#endif /* BERTH_OPTIONS_H */
