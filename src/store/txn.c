/*
 * Transactions: the only file that begins, commits and aborts LMDB
 * transactions.
 *
 * Writes: a single writer thread takes queued ops in arrival order and
 * applies each at once, in a nested transaction of one open group
 * transaction (so a failing op is rolled back alone). It commits the group
 * when durability is asked for and nothing else is queued, when the group
 * is large, or when the queue has been idle a moment (writer_main); then
 * it forces the disk once if any op asked for durability, and runs every
 * op's done(). The environment uses MDB_NOMETASYNC: each commit writes data
 * pages before the meta page, so a crash leaves the previous or the new
 * state, never a torn one; mdb_env_sync(env, 1) makes the meta page
 * durable too before a durable op is reported done.
 *
 * Reads: read-only transactions from any thread (MDB_NOTLS), kept short by
 * their callers.
 */
#include "config.h"

#include <stdatomic.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/statvfs.h>

#include "store/store_int.h"
#include "util/log.h"

/* An open group with no new op for this long is committed. */
#define STORE_GROUP_IDLE_MS 5
/* The writer frees its compression buffers after this long without ops. */
#define STORE_WRITER_RELEASE_MS 2000
/*
 * The map is unmapped after a group's worth of payload or this many
 * commits, whichever comes first, and when the writer goes idle. Unmapping
 * the whole map flushes the other core's TLB: after every commit it was
 * 5 % of berthd's CPU when each commit carried one 16 KiB blob.
 */
#define STORE_UNMAP_COMMITS 32

/*
 * Less free space than this after a short write (or twice a group's
 * payload, if more): the disk is full.
 */
#define STORE_DISK_FULL_SLACK_BYTES ((uint64_t)8 << 20)

int
store_mdb_error(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return STORE_E_NOTFOUND;
	case MDB_MAP_FULL:
		log_error("store: %s: map full (raise the map size)", what);
		return STORE_E_MAP_FULL;
	case ENOSPC:
		log_error("store: %s: no space left on device", what);
		return STORE_E_NOSPC;
	case ENOMEM:
		return STORE_E_NOMEM;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		log_error("store: %s: %s", what, mdb_strerror(rc));
		return STORE_E_CORRUPT;
	default:
		log_error("store: %s: %s", what, mdb_strerror(rc));
		return STORE_E_IO;
	}
}

void
store_op_complete(struct store_op *op, int rc)
{
	if (op->notify != NULL)
		op->notify(op->notify_arg, rc);
	free(op);
}

void
store_op_done_default(struct store_op *op, int rc)
{
	store_op_complete(op, rc);
}

void
store_op_submit(struct store *st, struct store_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&st->lock);
	/* While stopping, the writer still drains what is queued. */
	if (!st->writer_started) {
		pthread_mutex_unlock(&st->lock);
		op->done(op, (st->flags & STORE_OPEN_READONLY) ?
		    STORE_E_READONLY : STORE_E_CLOSED);
		return;
	}
	*st->tail = op;
	st->tail = &op->next;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

void
store_waiter_init(struct store_waiter *w)
{
	w->finished = false;
	w->rc = STORE_E_IO;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

void
store_waiter_notify(void *arg, int rc)
{
	struct store_waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->rc = rc;
	w->finished = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int
store_waiter_wait(struct store_waiter *w, int rc)
{
	if (rc == 0) {
		pthread_mutex_lock(&w->lock);
		while (!w->finished)
			pthread_cond_wait(&w->cond, &w->lock);
		rc = w->rc;
		pthread_mutex_unlock(&w->lock);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	return rc;
}

int
store_op_go(struct store *st, struct store_op *op, store_done_fn *done,
    void *arg)
{
	if (done == NULL)
		return store_op_run(st, op);
	op->notify = done;
	op->notify_arg = arg;
	store_op_submit(st, op);
	return 0;
}

int
store_op_run(struct store *st, struct store_op *op)
{
	struct store_waiter w;

	store_waiter_init(&w);
	op->notify = store_waiter_notify;
	op->notify_arg = &w;
	store_op_submit(st, op);
	return store_waiter_wait(&w, 0);
}

/*
 * LMDB reports a short write of its pages as EIO ("filesystem full?"),
 * which on a local file system means the disk is full. A commit that
 * failed that way wrote only pages no committed state refers to, so the
 * store is intact: tell it apart from a real I/O error by the free space
 * left where the store lives.
 */
static bool
writer_disk_full(struct store *st)
{
	struct statvfs sv;
	uint64_t slack = 2 * (uint64_t)st->batch_bytes;

	if (slack < STORE_DISK_FULL_SLACK_BYTES)
		slack = STORE_DISK_FULL_SLACK_BYTES;
	if (statvfs(st->path, &sv) != 0)
		return false;
	return (uint64_t)sv.f_bavail * sv.f_frsize < slack;
}

static void
writer_break(struct store *st)
{
	if (!st->broken)
		log_error("store: write failure; refusing writes until the "
		    "store is reopened");
	st->broken = true;
	atomic_store(&st->refusing_writes, 1);
}

/*
 * The open group: ops applied to one write transaction, waiting for the
 * commit that will make them visible and report them done.
 */
struct writer_group {
	struct store_wtxn w;
	bool open;
	int err;                        /* begin failed: every op gets it */
	bool poisoned;                  /* a nested commit failed: abort all */
	struct store_op *head, **tail;
	size_t bytes;
	bool durable;
};

static void
group_begin(struct store *st, struct writer_group *g)
{
	g->w = (struct store_wtxn){ .st = st, .now = store_now() };
	g->open = true;
	g->head = NULL;
	g->tail = &g->head;
	g->bytes = 0;
	g->durable = false;
	g->err = 0;
	g->poisoned = false;
	if (st->broken) {
		g->err = STORE_E_IO;
	} else {
		int rc = mdb_txn_begin(st->env, NULL, 0, &g->w.txn);

		if (rc != 0)
			g->err = store_mdb_error(rc, "begin write");
	}
}

/* Applies one op in a nested transaction, so a failure undoes it alone. */
static void
group_apply(struct store *st, struct writer_group *g, struct store_op *op)
{
	MDB_txn *parent = g->w.txn, *child = NULL;
	int rc;

	op->next = NULL;
	*g->tail = op;
	g->tail = &op->next;
	g->bytes += op->bytes;
	if (g->err != 0) {
		op->rc = g->err;
		return;
	}
	rc = mdb_txn_begin(st->env, parent, 0, &child);
	if (rc != 0) {
		op->rc = store_mdb_error(rc, "begin nested");
		return;
	}
	g->w.txn = child;
	rc = op->apply(&g->w, op);
	g->w.txn = parent;
	if (rc == 0) {
		rc = mdb_txn_commit(child);
		if (rc != 0) {
			/*
			 * LMDB may leave the parent unusable after a failed
			 * nested commit: the group is aborted, not committed,
			 * and nothing was written, so the store stays usable.
			 */
			rc = store_mdb_error(rc, "commit nested");
			g->poisoned = true;
		}
	} else {
		mdb_txn_abort(child);
	}
	op->rc = rc;
	if (rc == 0 && (op->flags & STORE_OP_DURABLE))
		g->durable = true;
}

/*
 * A commit reads B-tree pages through the map, and the kernel maps the
 * cached pages around each into the process; dropping the mapping keeps
 * them out of berthd's resident size (they stay in the page cache).
 */
static void
writer_unmap(struct store *st)
{
	chunk_unmap_all(st);
	st->map_bytes = 0;
	st->map_commits = 0;
}

/* Commits the group, forces the disk if an op asked, reports every op. */
static void
group_commit(struct store *st, struct writer_group *g)
{
	struct store_op *op, *next;
	int rc, grc = g->err;

	if (grc == 0 && g->poisoned) {
		mdb_txn_abort(g->w.txn);
		grc = STORE_E_IO;
	} else if (grc == 0) {
		rc = mdb_txn_commit(g->w.txn);
		if (rc == EIO && writer_disk_full(st))
			rc = ENOSPC;
		if (rc != 0)
			grc = store_mdb_error(rc, "commit");
		/*
		 * A full map or disk leaves the last good state in place. Any
		 * other commit failure, or a failed sync, may have lost pages
		 * the kernel will never write again (a failed fsync is not
		 * retried): later commits would build on them, so the store
		 * takes no more writes until it is reopened.
		 */
		if (rc != 0 && grc != STORE_E_MAP_FULL && grc != STORE_E_NOSPC)
			writer_break(st);
	}
	if (grc == 0) {
		st->map_bytes += g->bytes;
		st->map_commits++;
		if (st->map_bytes >= st->batch_bytes ||
		    st->map_commits >= STORE_UNMAP_COMMITS)
			writer_unmap(st);
	}
	if (grc == 0 && g->durable) {
		rc = mdb_env_sync(st->env, 1);
		if (rc != 0) {
			grc = store_mdb_error(rc, "sync");
			writer_break(st);
		}
	}
	g->open = false;
	for (op = g->head; op != NULL; op = next) {
		next = op->next;
		op->done(op, grc != 0 ? grc : op->rc);
	}
	g->head = NULL;
	g->tail = &g->head;
}

static void
deadline_after_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);      /* the cond's clock (env.c) */
	ts->tv_nsec += ms * 1000000L;
	ts->tv_sec += ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/*
 * The writer applies each op as soon as it is queued, into one open write
 * transaction, and commits when
 * - the queue is empty and the group holds a durable op (concurrent durable
 *   ops share one commit and one fsync),
 * - the group is full: within 1/32 of the store's batch_bytes, so that one
 *   whole chunk fills a group of its own size and goes to disk at once
 *   rather than when the next one has arrived (LMDB keeps a transaction's
 *   dirty pages in memory, so this bounds memory),
 * - no op arrived for STORE_GROUP_IDLE_MS (uploads that pause for
 *   backpressure see their chunks committed), or the store is closing.
 * Readers are never blocked by the open transaction; they see the state of
 * the last commit.
 */
static void *
writer_main(void *arg)
{
	struct store *st = arg;
	struct writer_group g = { .open = false };
	struct timespec deadline;
	struct store_op *op;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (st->head == NULL) {
			if (g.open && !st->stopping) {
				deadline_after_ms(&deadline, STORE_GROUP_IDLE_MS);
				pthread_cond_timedwait(&st->cond, &st->lock,
				    &deadline);
				if (st->head != NULL)
					continue;
			}
			if (g.open) {
				pthread_mutex_unlock(&st->lock);
				group_commit(st, &g);
				pthread_mutex_lock(&st->lock);
				continue;
			}
			if (st->stopping) {
				st->writer_started = false;
				break;
			}
			if (st->scratch == NULL && st->cctx == NULL &&
			    st->map_commits == 0) {
				pthread_cond_wait(&st->cond, &st->lock);
				continue;
			}
			deadline_after_ms(&deadline, STORE_WRITER_RELEASE_MS);
			if (pthread_cond_timedwait(&st->cond, &st->lock,
			    &deadline) == ETIMEDOUT && st->head == NULL &&
			    !st->stopping) {
				chunk_release(st);
				writer_unmap(st);
				store_malloc_release_arena();
			}
			continue;
		}
		op = st->head;
		st->head = op->next;
		if (st->head == NULL)
			st->tail = &st->head;
		pthread_mutex_unlock(&st->lock);

		if (g.open && g.bytes + op->bytes > st->batch_bytes &&
		    g.head != NULL)
			group_commit(st, &g);
		if (!g.open)
			group_begin(st, &g);
		group_apply(st, &g, op);

		pthread_mutex_lock(&st->lock);
		/* A group that could not begin answers at once; the next retries. */
		if (g.bytes >= st->batch_bytes - (st->batch_bytes >> 5) ||
		    g.err != 0 || g.poisoned ||
		    (g.durable && st->head == NULL)) {
			pthread_mutex_unlock(&st->lock);
			group_commit(st, &g);
			pthread_mutex_lock(&st->lock);
		}
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

int
store_writer_start(struct store *st)
{
	st->head = NULL;
	st->tail = &st->head;
	st->stopping = false;
	if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
		log_error("store: cannot start the writer thread");
		return STORE_E_NOMEM;
	}
	st->writer_started = true;
	st->writer_joinable = true;
	return 0;
}

void
store_writer_stop(struct store *st)
{
	bool joinable;

	pthread_mutex_lock(&st->lock);
	joinable = st->writer_joinable;
	st->stopping = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	if (joinable)
		pthread_join(st->writer, NULL);
	st->writer_joinable = false;
}

int
store_txn_run_now(struct store *st, int (*fn)(struct store_wtxn *, void *),
    void *arg)
{
	struct store_wtxn w = { .st = st, .now = store_now() };
	bool ro = st->flags & STORE_OPEN_READONLY;
	int rc;

	rc = mdb_txn_begin(st->env, NULL, ro ? MDB_RDONLY : 0, &w.txn);
	if (rc != 0)
		return store_mdb_error(rc, "begin");
	rc = fn(&w, arg);
	if (rc != 0) {
		mdb_txn_abort(w.txn);
		return rc;
	}
	rc = mdb_txn_commit(w.txn);
	if (rc == 0 && !ro)
		rc = mdb_env_sync(st->env, 1);
	return store_mdb_error(rc, "commit");
}

int
store_rtxn_begin(struct store *st, MDB_txn **out)
{
	int rc;

	*out = NULL;
	rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, out);
	if (rc != 0) {
		*out = NULL;
		return store_mdb_error(rc, "begin read");
	}
	return 0;
}

void
store_rtxn_end(MDB_txn *txn)
{
	if (txn != NULL)
		mdb_txn_abort(txn);
}
