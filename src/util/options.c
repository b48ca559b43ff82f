#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/duration.h"
#include "util/options.h"

static void *
field(const struct opt *o, void *conf)
{
	return (char *)conf + o->offset;
}

static int
parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int
parse_flag(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int
opt_set(const struct opt *o, void *conf, const char *val, char *why,
    size_t whysize)
{
	uint64_t v;

	switch (o->type) {
	case OPT_FLAG:
		if (val == NULL) {
			*(bool *)field(o, conf) = true;
			return 0;
		}
		if (parse_flag(val, field(o, conf)) != 0) {
			snprintf(why, whysize, "%s: want true or false, not '%s'",
			    o->name, val);
			return -1;
		}
		return 0;
	case OPT_STRING:
		if (val == NULL || *val == '\0') {
			snprintf(why, whysize, "%s: missing value", o->name);
			return -1;
		}
		*(const char **)field(o, conf) = val;
		return 0;
	case OPT_LIST: {
		struct opt_list *l = field(o, conf);

		if (val == NULL || *val == '\0') {
			snprintf(why, whysize, "%s: missing value", o->name);
			return -1;
		}
		if (l->n == OPT_LIST_MAX) {
			snprintf(why, whysize, "%s: at most %d", o->name,
			    OPT_LIST_MAX);
			return -1;
		}
		l->v[l->n++] = val;
		return 0;
	}
	case OPT_ENUM:
		for (size_t i = 0; val != NULL && o->choices[i] != NULL; i++) {
			if (strcmp(val, o->choices[i]) == 0) {
				*(const char **)field(o, conf) = o->choices[i];
				return 0;
			}
		}
		snprintf(why, whysize, "%s: want one of", o->name);
		for (size_t i = 0; o->choices[i] != NULL; i++) {
			size_t n = strlen(why);

			snprintf(why + n, whysize - n, "%s %s", i ? "," : "",
			    o->choices[i]);
		}
		return -1;
	case OPT_UINT:
	case OPT_DURATION:
		if (val == NULL || (o->type == OPT_UINT ? parse_uint(val, &v) :
		    duration_parse(val, &v)) != 0 || v < o->min || v > o->max) {
			if (o->type == OPT_UINT)
				snprintf(why, whysize, "%s: want a number from "
				    "%llu to %llu, not '%s'", o->name,
				    (unsigned long long)o->min,
				    (unsigned long long)o->max, val ? val : "");
			else
				snprintf(why, whysize, "%s: want a duration "
				    "(like 90s, 30m, 1h, 7d) from %llu s to "
				    "%llu s, not '%s'", o->name,
				    (unsigned long long)o->min,
				    (unsigned long long)o->max, val ? val : "");
			return -1;
		}
		*(uint64_t *)field(o, conf) = v;
		return 0;
	}
	return -1;
}

const struct opt *
opt_find(const struct opt *table, const char *name, size_t len)
{
	for (const struct opt *o = table; o->name != NULL; o++)
		if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static char *
trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

int
opt_load_file(const struct opt *table, void *conf, const char *path,
    char *why, size_t whysize)
{
	FILE *f = fopen(path, "r");
	char *buf, *p, *end;
	size_t n, line = 0;

	if (f == NULL) {
		snprintf(why, whysize, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Kept for the program's life: values point into it. */
	buf = malloc(OPT_FILE_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		snprintf(why, whysize, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, OPT_FILE_MAX_BYTES + 1, f);
	if (ferror(f) || n > OPT_FILE_MAX_BYTES) {
		snprintf(why, whysize, "%s: %s", path, ferror(f) ? "read error" :
		    "larger than 1 MiB");
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	for (p = buf, end = buf + n; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl != NULL ? nl : end, *eq, *key, *val, *hash;
		const struct opt *o;
		char sub[256];

		line++;
		if ((size_t)(eol - p) > OPT_LINE_MAX_BYTES ||
		    memchr(p, '\0', (size_t)(eol - p)) != NULL) {
			snprintf(why, whysize, "%s:%zu: line too long or holds "
			    "a NUL byte", path, line);
			free(buf);
			return -1;
		}
		hash = memchr(p, '#', (size_t)(eol - p));
		eq = memchr(p, '=', (size_t)((hash != NULL ? hash : eol) - p));
		key = p;
		p = nl != NULL ? nl + 1 : end;
		if (hash != NULL)
			*hash = '\0';
		if (eq == NULL) {
			if (*trim(key, hash != NULL ? hash : eol) == '\0')
				continue;
			snprintf(why, whysize, "%s:%zu: want key = value", path,
			    line);
			free(buf);
			return -1;
		}
		val = trim(eq + 1, hash != NULL ? hash : eol);
		key = trim(key, eq);
		o = opt_find(table, key, strlen(key));
		if (o == NULL || o->cli_only) {
			snprintf(why, whysize, "%s:%zu: unknown key '%s'", path,
			    line, key);
			free(buf);
			return -1;
		}
		if (opt_set(o, conf, val, sub, sizeof(sub)) != 0) {
			snprintf(why, whysize, "%s:%zu: %s", path, line, sub);
			free(buf);
			return -1;
		}
	}
	return 0;
}

/* Prints text wrapped at 78 columns, continuation lines at indent. */
static void
wrap(FILE *f, const char *text, size_t col, size_t indent)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = strcspn(p, " ");

		if (col + 1 + n > 78 && col > indent) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fwrite(p, 1, n, f);
		col += n;
		p += n;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

void
opt_usage(const struct opt *table, FILE *f)
{
	for (const struct opt *o = table; o->name != NULL; o++) {
		char left[64], text[512];

		if (o->type == OPT_FLAG)
			snprintf(left, sizeof(left), "--%s", o->name);
		else
			snprintf(left, sizeof(left), "--%s %s", o->name,
			    o->arg != NULL ? o->arg : "VALUE");
		snprintf(text, sizeof(text), "%s%s%s%s", o->help,
		    o->def != NULL && o->type != OPT_FLAG ? " (default " : "",
		    o->def != NULL && o->type != OPT_FLAG ? o->def : "",
		    o->def != NULL && o->type != OPT_FLAG ? ")" : "");
		if (strlen(left) > 26) {
			fprintf(f, "  %s\n%*s", left, 30, "");
		} else {
			fprintf(f, "  %-26s  ", left);
		}
		wrap(f, text, 30, 30);
	}
}

/*
 * Text for mdoc: each sentence on its own line, lines under 72 columns,
 * backslashes escaped, and no line starting with '.' or '\'' (which
 * would be a request). The help text of a table entry is a phrase: it
 * gets a capital and a full stop.
 */
static void
mdoc_text(FILE *f, const char *s, bool phrase)
{
	size_t col = 0;

	while (*s != '\0') {
		size_t n = strcspn(s, " ");
		bool end;

		if (col > 0 && col + 1 + n > 72) {
			fputc('\n', f);
			col = 0;
		} else if (col > 0) {
			fputc(' ', f);
			col++;
		}
		if (col == 0 && (*s == '.' || *s == '\''))
			fputs("\\&", f);
		for (size_t i = 0; i < n; i++) {
			char c = s[i];

			if (phrase && col == 0 && i == 0 && c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
			phrase = false;
			if (c == '\\')
				fputs("\\e", f);
			else
				fputc(c, f);
		}
		col += n;
		end = n > 0 && s[n - 1] == '.';
		s += n;
		while (*s == ' ')
			s++;
		if (end && *s != '\0') {
			fputc('\n', f);
			col = 0;
		}
	}
	fputc('\n', f);
}

void
opt_mdoc(const struct opt *table, FILE *f, const char *name, const char *date)
{
	fprintf(f, ".\\\" Generated from the option table in src/berthd.c by\n"
	    ".\\\" `berthd --print-config-manual`; edit the table, not this.\n"
	    ".Dd %s\n.Dt BERTHD.CONF 5\n.Os\n.Sh NAME\n.Nm %s\n"
	    ".Nd configuration file of berthd\n.Sh DESCRIPTION\n"
	    "The file holds one\n.Ql key = value\nper line.\n"
	    "A\n.Ql #\nstarts a comment anywhere on a line, so no value can "
	    "hold one;\nblank lines are ignored.\n"
	    "Every key is also a command-line option of\n.Xr berthd 8\n"
	    "with the same name, and a value given on the command line\n"
	    "overrides the file's (a list option given on the command line\n"
	    "replaces the file's list; a flag the file turns on is turned\n"
	    "off with\n.Fl -name Ns = Ns Cm false ) .\n"
	    "Flags take\n.Cm true\nor\n.Cm false .\n"
	    "Durations are a number of seconds or a number followed by\n"
	    ".Cm s , m , h\nor\n.Cm d .\n"
	    "An unknown key or a bad value stops\n.Nm berthd\n"
	    "with the file name and line number;\n.Ic berthd -n\n"
	    "checks a file without starting.\n.Sh KEYS\n.Bl -tag -width Ds\n",
	    date, name);
	for (const struct opt *o = table; o->name != NULL; o++) {
		if (o->cli_only)
			continue;
		fprintf(f, ".It Cm %s No = Ar %s\n", o->name,
		    o->type == OPT_FLAG ? "true|false" :
		    o->arg != NULL ? o->arg : "value");
		if (o->doc != NULL) {
			mdoc_text(f, o->doc, false);
		} else {
			char t[512];

			snprintf(t, sizeof(t), "%s.", o->help);
			mdoc_text(f, t, true);
		}
		if (o->type == OPT_UINT || o->type == OPT_DURATION)
			fprintf(f, "From %llu to %llu%s.\n",
			    (unsigned long long)o->min,
			    (unsigned long long)o->max,
			    o->type == OPT_DURATION ? " seconds" : "");
		if (o->type == OPT_LIST)
			fprintf(f, "May be given up to %d times.\n", OPT_LIST_MAX);
		if (o->def != NULL) {
			fputs("The default is\n.Ql ", f);
			fputs(o->def, f);
			fputs(" .\n", f);
		}
	}
	fprintf(f, ".El\n.Sh FILES\n.Bl -tag -width Ds\n"
	    ".It Pa /etc/berth/berthd.conf\nread when\n.Fl -config\n"
	    "is not given and the file exists (under the installation's\n"
	    ".Pa sysconfdir ) .\n.El\n.Sh EXAMPLES\n.Bd -literal\n"
	    "data = /var/lib/berth\nlisten = 0.0.0.0:443\nlisten = [::]:443\n"
	    "tls-cert = /etc/berth/cert.pem\ntls-key = /etc/berth/key.pem\n"
	    "htpasswd = /etc/berth/htpasswd\naccess = /etc/berth/access\n"
	    "user = berth\ngc-interval = 1h\n.Ed\n.Sh SEE ALSO\n"
	    ".Xr berth-fsck 8 ,\n.Xr berth-gc 8 ,\n.Xr berthd 8\n");
}
