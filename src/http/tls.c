/*
 * TLS for berthd: the server context (TLS 1.2 minimum), loading a
 * certificate and key, and on first start without one, a self-signed
 * EC P-256 certificate for localhost, 127.0.0.1, ::1 and the host name,
 * written into the data folder.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/tls.h"
#include "util/log.h"

#define TLS_CERT_DAYS           3650
#define TLS_HOSTNAME_MAX_BYTES  256

static void
tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_error("tls: %s: %s", what, buf);
	}
}

int
tls_fingerprint(const char *cert_path, char out[TLS_FINGERPRINT_BYTES])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	X509 *x = NULL;
	FILE *f;
	int rc = -1;

	out[0] = '\0';
	f = fopen(cert_path, "r");
	if (f == NULL)
		return -1;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x != NULL && X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32) {
		for (unsigned i = 0; i < n; i++)
			snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
		rc = 0;
	}
	X509_free(x);
	return rc;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* Writes PEM output to path atomically (temporary file, then rename). */
static int
write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, ok;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	/* A stale temporary file could carry wider permissions: start anew. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (ok != 1 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
tls_generate_self_signed(const char *cert_path, const char *key_path)
{
	char host[TLS_HOSTNAME_MAX_BYTES], san[2 * TLS_HOSTNAME_MAX_BYTES];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	int rc = -1;

	key = EVP_EC_gen("P-256");
	x = X509_new();
	if (key == NULL || x == NULL)
		goto out;
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1%s%s",
	    strcmp(host, "localhost") != 0 ? ",DNS:" : "",
	    strcmp(host, "localhost") != 0 ? host : "");
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set_int64(X509_get_serialNumber(x),
	    (int64_t)time(NULL)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x),
	    (long)TLS_CERT_DAYS * 24 * 3600) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"berth", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"localhost", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto out;
	/* A self-signed leaf that clients may also install as their CA. */
	if (add_ext(x, NID_subject_alt_name, san) != 0 ||
	    add_ext(x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
	    add_ext(x, NID_key_usage,
	    "critical,digitalSignature,keyCertSign") != 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") != 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") != 0)
		goto out;
	if (X509_sign(x, key, EVP_sha256()) == 0)
		goto out;
	if (write_pem(key_path, 0600, key, NULL) != 0 ||
	    write_pem(cert_path, 0644, NULL, x) != 0) {
		log_error("tls: cannot write %s / %s: %s", cert_path, key_path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		tls_log_errors("generate certificate");
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

SSL_CTX *
tls_ctx_new(const char *cert_path, const char *key_path)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	/*
	 * OpenSSL 3 reports a peer's close without close_notify as an error;
	 * clients do that all the time after a complete response. A body cut
	 * short is still caught by HTTP framing.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/*
	 * AEAD suites only, AES-128-GCM first: OpenSSL's default puts
	 * AES-256-GCM first, which costs every byte of a push or pull about
	 * a third more AES work for no gain that matters to a registry.
	 */
	if (SSL_CTX_set_ciphersuites(ctx, TLS_SUITES_13) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_SUITES_12) != 1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	tls_log_errors(cert_path);
	SSL_CTX_free(ctx);
	return NULL;
}
