/* TLS helpers for berthd. */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <openssl/ssl.h>

/*
 * What berthd offers: TLS 1.3 suites, then TLS 1.2 ECDHE with AEAD only
 * (forward secrecy, no CBC, no RSA key exchange). tests/bench/tls_ceiling.c
 * offers the same, so that its ceilings compare.
 */
#define TLS_SUITES_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_SUITES_12 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* "AB:CD:..." for a SHA-256 fingerprint, with NUL. */
#define TLS_FINGERPRINT_BYTES (32 * 3)

/*
 * Generates an EC P-256 key and a self-signed certificate for localhost,
 * 127.0.0.1, ::1 and the host name; writes them (key mode 0600). 0 or -1.
 */
int tls_generate_self_signed(const char *cert_path, const char *key_path);

/* SHA-256 fingerprint of the PEM certificate at cert_path. 0 or -1. */
int tls_fingerprint(const char *cert_path, char out[TLS_FINGERPRINT_BYTES]);

/* A server context (TLS 1.2+) with the chain and key loaded; NULL logged. */
SSL_CTX *tls_ctx_new(const char *cert_path, const char *key_path);

#endif
