/*
 * Decoders for every record value the store reads back. Database bytes are
 * untrusted (a damaged file, a hostile copy): each decoder checks every
 * length against the value's size before it reads, and returns
 * STORE_E_CORRUPT for anything that does not match format.h exactly. The
 * store and berth-fsck both decode through these functions.
 */
#include "config.h"

#include <string.h>

#include "store/store_int.h"

int
record_blob_decode(const void *val, size_t len, struct store_blob_info *info,
    uint64_t *set)
{
	const uint8_t *p = val;

	memset(info, 0, sizeof(*info));
	*set = 0;
	if (len != FORMAT_BLOB_BYTES || format_get_le64(p + 40) != 0 ||
	    (format_get_le32(p + 36) & ~FORMAT_BLOB_F_KNOWN) != 0)
		return STORE_E_CORRUPT;
	info->size = format_get_le64(p);
	info->stored = format_get_le64(p + 8);
	*set = format_get_le64(p + 16);
	info->created = format_get_le64(p + 24);
	info->nchunks = format_get_le32(p + 32);
	info->flags = format_get_le32(p + 36);
	return 0;
}

int
record_upload_decode(const void *val, size_t len, struct upload_rec *out)
{
	const uint8_t *p = val, *sha;
	uint64_t bits;

	memset(out, 0, sizeof(*out));
	if (len < FORMAT_UPLOAD_FIXED_BYTES)
		return STORE_E_CORRUPT;
	out->repolen = format_get_le16(p + 48 + FORMAT_SHA256_STATE_BYTES);
	if (len != FORMAT_UPLOAD_FIXED_BYTES + out->repolen ||
	    !oci_name_valid((const char *)p + FORMAT_UPLOAD_FIXED_BYTES,
	    out->repolen))
		goto corrupt;
	out->set = format_get_le64(p);
	out->offset = format_get_le64(p + 8);
	out->created = format_get_le64(p + 16);
	out->updated = format_get_le64(p + 24);
	out->flags = format_get_le32(p + 32);
	out->nchunks = format_get_le32(p + 36);
	out->stored = format_get_le64(p + 40);
	if ((out->flags & ~FORMAT_UPLOAD_F_KNOWN) != 0)
		goto corrupt;
	sha = p + 48;
	bits = format_get_le64(sha + 32);
	out->sha_buffered = format_get_le32(sha + 40);
	/* The hash has seen exactly the committed bytes, in whole bytes. */
	if (out->sha_buffered >= 64 || bits % 8 != 0 || bits / 8 != out->offset ||
	    out->offset % 64 != out->sha_buffered)
		goto corrupt;
	out->sha_state = sha;
	out->repo = (const char *)p + FORMAT_UPLOAD_FIXED_BYTES;
	return 0;
corrupt:
	memset(out, 0, sizeof(*out));
	return STORE_E_CORRUPT;
}

int
record_manifest_decode(const void *val, size_t len, struct manifest_rec *out)
{
	const uint8_t *p = val;
	size_t mtlen;

	memset(out, 0, sizeof(*out));
	if (len < FORMAT_MANIFEST_FIXED_BYTES)
		return STORE_E_CORRUPT;
	mtlen = format_get_le16(p + 8);
	if (mtlen == 0 || mtlen > FORMAT_MEDIA_TYPE_MAX_BYTES ||
	    mtlen > len - FORMAT_MANIFEST_FIXED_BYTES)
		return STORE_E_CORRUPT;
	out->created = format_get_le64(p);
	out->media_type = (const char *)p + FORMAT_MANIFEST_FIXED_BYTES;
	out->media_type_len = mtlen;
	out->chunk = p + FORMAT_MANIFEST_FIXED_BYTES + mtlen;
	out->chunk_len = len - FORMAT_MANIFEST_FIXED_BYTES - mtlen;
	return 0;
}

int
record_tag_decode(const void *val, size_t len, struct oci_digest *d,
    uint64_t *updated)
{
	memset(d, 0, sizeof(*d));
	*updated = 0;
	if (len != FORMAT_TAG_BYTES ||
	    digest_from_key(val, FORMAT_DIGEST_KEY_BYTES, d) != 0)
		return STORE_E_CORRUPT;
	*updated = format_get_le64((const uint8_t *)val + FORMAT_DIGEST_KEY_BYTES);
	return 0;
}

int
record_referrer_decode(const void *val, size_t len, struct store_referrer *r)
{
	const uint8_t *p = val;
	size_t mtlen, atlen;

	memset(r, 0, sizeof(*r));
	if (len < 12)
		return STORE_E_CORRUPT;
	mtlen = format_get_le16(p + 8);
	if (mtlen > len - 12)
		return STORE_E_CORRUPT;
	atlen = format_get_le16(p + 10 + mtlen);
	if (atlen != len - 12 - mtlen || mtlen == 0 ||
	    mtlen > FORMAT_MEDIA_TYPE_MAX_BYTES ||
	    atlen > FORMAT_MEDIA_TYPE_MAX_BYTES)
		return STORE_E_CORRUPT;
	r->size = format_get_le64(p);
	r->media_type = (const char *)p + 10;
	r->media_type_len = mtlen;
	r->artifact_type = (const char *)p + 12 + mtlen;
	r->artifact_type_len = atlen;
	return 0;
}
