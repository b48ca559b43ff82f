/*
 * Manifest and index parsing with jansson: the media type, every
 * descriptor a manifest references (config, layers, child manifests,
 * subject) and the artifact type, checked against the image-spec. The
 * bytes stay the client's; nothing here rewrites them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "berth/oci.h"

#define WHY(...) do { if (why != NULL) snprintf(why, whysize, __VA_ARGS__); } while (0)

static bool
is_manifest_type(const char *mt)
{
	return strcmp(mt, OCI_MT_OCI_MANIFEST) == 0 ||
	    strcmp(mt, OCI_MT_DOCKER_MANIFEST) == 0;
}

static bool
is_index_type(const char *mt)
{
	return strcmp(mt, OCI_MT_OCI_INDEX) == 0 ||
	    strcmp(mt, OCI_MT_DOCKER_LIST) == 0;
}

/* Layers a client never pushes: they live elsewhere (image-spec layer.md). */
static bool
is_external_layer(const char *mt)
{
	return strstr(mt, ".foreign.") != NULL ||
	    strstr(mt, ".nondistributable.") != NULL;
}

static int
descriptor(json_t *d, uint8_t kind, struct oci_ref *out, const char *what,
    char *why, size_t whysize)
{
	json_t *dg = json_object_get(d, "digest");
	json_t *sz = json_object_get(d, "size");
	json_t *mt = json_object_get(d, "mediaType");
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d) || !json_is_string(dg) || !json_is_integer(sz) ||
	    json_integer_value(sz) < 0 || (mt != NULL && !json_is_string(mt))) {
		WHY("%s: a descriptor needs a digest, a size and a string mediaType",
		    what);
		return OCI_E_INVALID;
	}
	rc = oci_digest_parse(json_string_value(dg), json_string_length(dg),
	    &out->digest);
	if (rc != 0) {
		WHY("%s: %s digest %s", what, rc == OCI_E_UNSUPPORTED ?
		    "unsupported" : "invalid", json_string_value(dg));
		return OCI_E_INVALID;
	}
	out->kind = kind;
	out->size = (uint64_t)json_integer_value(sz);
	out->external = kind == OCI_REF_LAYER && mt != NULL &&
	    is_external_layer(json_string_value(mt));
	return 0;
}

int
oci_manifest_parse(const void *buf, size_t len, const char *content_type,
    size_t ctlen, struct oci_manifest *out, char *why, size_t whysize)
{
	json_error_t err;
	json_t *root, *v, *arr;
	const char *mt = NULL;
	char ct[OCI_MEDIA_TYPE_MAX_BYTES + 1] = "";
	size_t n = 0, i;
	int rc = OCI_E_INVALID;

	memset(out, 0, sizeof(*out));
	if (why != NULL && whysize > 0)
		why[0] = '\0';
	/* Content-Type parameters (";charset=...") are not part of the type. */
	if (content_type != NULL) {
		const char *semi = memchr(content_type, ';', ctlen);

		if (semi != NULL)
			ctlen = (size_t)(semi - content_type);
		while (ctlen > 0 && content_type[ctlen - 1] == ' ')
			ctlen--;
		if (ctlen > OCI_MEDIA_TYPE_MAX_BYTES) {
			WHY("Content-Type too long");
			return OCI_E_INVALID;
		}
		memcpy(ct, content_type, ctlen);
		ct[ctlen] = '\0';
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL || !json_is_object(root)) {
		WHY("not a JSON object: %s", root == NULL ? err.text : "");
		json_decref(root);
		return OCI_E_INVALID;
	}
	v = json_object_get(root, "schemaVersion");
	if (!json_is_integer(v) || json_integer_value(v) != 2) {
		WHY("schemaVersion must be 2");
		rc = json_is_integer(v) && json_integer_value(v) == 1 ?
		    OCI_E_UNSUPPORTED : OCI_E_INVALID;
		goto out;
	}
	v = json_object_get(root, "mediaType");
	if (v != NULL && !json_is_string(v)) {
		WHY("mediaType must be a string");
		goto out;
	}
	if (v != NULL)
		mt = json_string_value(v);
	/* The document's type and the request's must agree when both exist. */
	if (mt != NULL && ct[0] != '\0' && strcmp(mt, ct) != 0) {
		WHY("mediaType %s does not match Content-Type %s", mt, ct);
		goto out;
	}
	if (mt == NULL)
		mt = ct[0] != '\0' ? ct : NULL;
	if (mt == NULL) {
		/* OCI allows omitting mediaType; the shape tells which. */
		mt = json_object_get(root, "manifests") != NULL ? OCI_MT_OCI_INDEX :
		    OCI_MT_OCI_MANIFEST;
	}
	if (strlen(mt) > OCI_MEDIA_TYPE_MAX_BYTES ||
	    (!is_manifest_type(mt) && !is_index_type(mt))) {
		WHY("unsupported manifest media type %s", mt);
		rc = OCI_E_UNSUPPORTED;
		goto out;
	}
	snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
	out->is_index = is_index_type(mt);
	v = json_object_get(root, "artifactType");
	if (v != NULL) {
		if (!json_is_string(v) ||
		    json_string_length(v) > OCI_MEDIA_TYPE_MAX_BYTES) {
			WHY("artifactType must be a media type");
			goto out;
		}
		snprintf(out->artifact_type, sizeof(out->artifact_type), "%s",
		    json_string_value(v));
	}
	arr = json_object_get(root, out->is_index ? "manifests" : "layers");
	if (!json_is_array(arr) || json_array_size(arr) > OCI_MANIFEST_REFS_MAX) {
		WHY("%s must be an array of at most %d descriptors",
		    out->is_index ? "manifests" : "layers", OCI_MANIFEST_REFS_MAX);
		goto out;
	}
	out->refs = calloc(json_array_size(arr) + 2, sizeof(*out->refs));
	if (out->refs == NULL)
		goto out;
	if (!out->is_index) {
		v = json_object_get(root, "config");
		if (descriptor(v, OCI_REF_CONFIG, &out->refs[n], "config", why,
		    whysize) != 0)
			goto out;
		n++;
		/* An artifact's type defaults to its config's (image-spec). */
		if (out->artifact_type[0] == '\0') {
			json_t *cmt = json_object_get(v, "mediaType");

			if (json_is_string(cmt) &&
			    json_string_length(cmt) <= OCI_MEDIA_TYPE_MAX_BYTES)
				snprintf(out->artifact_type,
				    sizeof(out->artifact_type), "%s",
				    json_string_value(cmt));
		}
	}
	json_array_foreach(arr, i, v) {
		if (descriptor(v, out->is_index ? OCI_REF_MANIFEST : OCI_REF_LAYER,
		    &out->refs[n], out->is_index ? "manifests" : "layers", why,
		    whysize) != 0)
			goto out;
		n++;
	}
	v = json_object_get(root, "subject");
	if (v != NULL) {
		if (descriptor(v, OCI_REF_SUBJECT, &out->refs[n], "subject", why,
		    whysize) != 0)
			goto out;
		out->has_subject = true;
		out->subject = out->refs[n].digest;
		n++;
	}
	out->nrefs = n;
	rc = 0;
out:
	json_decref(root);
	if (rc != 0)
		oci_manifest_free(out);
	return rc;
}

void
oci_manifest_free(struct oci_manifest *m)
{
	free(m->refs);
	memset(m, 0, sizeof(*m));
}
