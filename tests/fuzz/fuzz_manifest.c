/*
 * Fuzz target: manifest and index parsing (what a PUT carries, and what
 * berth-fsck and berth-export re-read from the store), and the reference
 * grammars of the archive tools (REPO:TAG, REPO@DIGEST, archive image
 * names, OS/ARCH[/VARIANT]). The first input byte picks the Content-Type
 * the document is parsed with; the rest is the document, and also each
 * grammar's input.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/export.h"
#include "berth/import.h"
#include "berth/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {
		NULL, OCI_MT_OCI_MANIFEST, OCI_MT_OCI_INDEX,
		OCI_MT_DOCKER_MANIFEST, OCI_MT_DOCKER_LIST,
		"application/vnd.docker.distribution.manifest.v1+json",
		"text/plain",
	};
	const char *ct, *s;
	struct oci_manifest m;
	struct export_ref er;
	struct export_platform ep;
	struct import_name in;
	char why[256];
	size_t n;

	if (size < 1)
		return 0;
	ct = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	s = (const char *)data + 1;
	n = size - 1;
	if (oci_manifest_parse(s, n, ct, ct != NULL ? strlen(ct) : 0, &m, why,
	    sizeof(why)) == 0) {
		if (m.nrefs > OCI_MANIFEST_REFS_MAX || m.media_type[0] == '\0' ||
		    strlen(m.media_type) > OCI_MEDIA_TYPE_MAX_BYTES)
			abort();
		for (size_t i = 0; i < m.nrefs; i++)
			if (m.refs[i].kind < OCI_REF_CONFIG ||
			    m.refs[i].kind > OCI_REF_SUBJECT)
				abort();
		oci_manifest_free(&m);
	} else if (memchr(why, '\0', sizeof(why)) == NULL) {
		abort();        /* the reason is always a terminated line */
	}
	if (export_ref_parse(s, n, &er) == 0 &&
	    (!oci_name_valid(er.repo, strlen(er.repo)) ||
	    (!er.by_digest && !oci_tag_valid(er.tag, strlen(er.tag)))))
		abort();
	if (import_name_map(s, n, NULL, &in) == 0 &&
	    !oci_name_valid(in.repo, strlen(in.repo)))
		abort();
	(void)export_platform_parse(s, n, &ep);
	return 0;
}
