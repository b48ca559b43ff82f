/*
 * Fuzz target: every decoder of database bytes (the file is untrusted for
 * the tools). The first input byte picks the decoder, the rest is the
 * record value. A chunk that verifies is also decoded.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[FORMAT_CHUNK_RAW_MAX];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ZSTD_DCtx *dctx;
	struct store_blob_info info;
	struct store_referrer ref;
	struct upload_rec up;
	struct manifest_rec mr;
	struct oci_digest d;
	struct chunk_hdr h;
	uint64_t u;

	if (size < 1)
		return 0;
	if (dctx == NULL)
		dctx = ZSTD_createDCtx();
	switch (data[0] % 6) {
	case 0:
		if (chunk_verify(data + 1, size - 1, FORMAT_CHUNK_RAW_MAX, &h) == 0 &&
		    chunk_decode(data + 1, &h, dctx, out, sizeof(out)) == 0 &&
		    h.raw_len > sizeof(out))
			abort();
		break;
	case 1:
		(void)record_blob_decode(data + 1, size - 1, &info, &u);
		break;
	case 2:
		if (record_upload_decode(data + 1, size - 1, &up) == 0 &&
		    (up.repolen > FORMAT_REPO_MAX_BYTES || up.sha_buffered >= 64))
			abort();
		break;
	case 3:
		if (record_manifest_decode(data + 1, size - 1, &mr) == 0 &&
		    mr.chunk + mr.chunk_len != data + size)
			abort();
		break;
	case 4:
		(void)record_tag_decode(data + 1, size - 1, &d, &u);
		break;
	case 5:
		if (record_referrer_decode(data + 1, size - 1, &ref) == 0 &&
		    ref.artifact_type + ref.artifact_type_len !=
		    (const char *)data + size)
			abort();
		break;
	}
	return 0;
}
