/*
 * Fuzz target: bearer token verification (every byte of a token is
 * untrusted until its signature checks) and scope parameters. The key is
 * made once per process in a temporary folder.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct token_key *k;
	struct token_claims c;
	struct token_access a;

	if (k == NULL) {
		char dir[] = "/tmp/berth-fuzz-token-XXXXXX", path[64], why[256];

		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof(path), "%s/key.pem", dir);
		k = token_key_load(path, true, why, sizeof(why));
		unlink(path);
		rmdir(dir);
		if (k == NULL)
			abort();
	}
	if (token_verify(k, "berth", (const char *)data, size, 1800000000u,
	    &c) == 0)
		abort();        /* nothing but this key's own tokens verifies */
	(void)token_scope_parse((const char *)data, size, &a);
	return 0;
}
