/*
 * The OCI Distribution API 1.1 (and Docker Registry HTTP API V2) on top of
 * the store: routing, handlers and the spec's error JSON.
 */
#ifndef BERTH_API_H
#define BERTH_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "berth/store.h"
#include "http/server.h"

#define API_MAX_BLOB_BYTES_DEFAULT      ((uint64_t)10 << 30)    /* 10 GiB */
#define API_MAX_MANIFEST_BYTES_DEFAULT  ((size_t)4 << 20)       /* 4 MiB */
#define API_MAX_UPLOADS_DEFAULT         256
/*
 * Bytes of streamed bodies the store may hold uncommitted before reading
 * pauses (resuming once back under them; berthd's --upload-buffer):
 * shared out among the bodies being read, each allowed at least the
 * minimum, half a chunk, so that it pauses once a whole chunk waits. One
 * chunk by default: a lone push then has one chunk in the writer's group,
 * one waiting and one being read, and the socket's own buffer carries it
 * through the group's sync (docs/PERFORMANCE.md has the measurements).
 */
#define API_UPLOAD_BUFFER_BYTES_DEFAULT ((uint64_t)1 << 20)
#define API_UPLOAD_PENDING_MIN_BYTES    ((uint64_t)512 << 10)
#define API_LIST_MAX_DEFAULT            1000    /* tags/catalog page cap */
/* Seconds after the last push or pull before the heap is given back. */
#define API_HEAP_RELEASE_DELAY_S        2

/* The access a route needs; enforced by authentication when configured. */
enum api_access {
	API_ACCESS_NONE,        /* the /v2/ check */
	API_ACCESS_PULL,
	API_ACCESS_PUSH,
	API_ACCESS_DELETE,
	API_ACCESS_CATALOG,
};

struct api_config {
	uint64_t max_blob_bytes;
	size_t max_manifest_bytes;
	size_t max_uploads;     /* upload sessions open at once */
	uint64_t upload_buffer_bytes;   /* 0: API_UPLOAD_BUFFER_BYTES_DEFAULT */
};

struct api;
struct auth;
struct token_key;

/* Bearer tokens (docs/AUTH.md): on when key is set. */
struct api_token {
	struct token_key *key;          /* signs and verifies; the caller's */
	char service[64];               /* the tokens' audience */
	uint64_t ttl;                   /* seconds a token lives */
	bool tls;                       /* realm scheme: https or http */
	const char *realm;              /* the whole realm URL, or NULL */
};

struct api *api_new(struct store *st, struct event_base *base,
    const struct api_config *cfg);
/* Frees idle upload sessions; call when no request is in flight. */
void api_free(struct api *a);

/*
 * Turns authentication on (auth not NULL) or off, and returns the previous
 * configuration for the caller to free. Requests already past their check
 * keep the rights they were given.
 */
struct auth *api_set_auth(struct api *a, struct auth *auth);

/*
 * Answers clients without credentials with a Bearer challenge whose realm
 * is berthd's own /token, which issues tokens to users of the current
 * struct auth; Basic credentials keep working. Needs api_set_auth.
 */
void api_set_token(struct api *a, const struct api_token *t);

/* The http_handler_fn for berthd's server. */
void api_handle(void *arg, struct http_conn *c, const struct http_request *r);

#endif
