/*
 * Hot backup: LMDB's environment copy reads one snapshot through a read
 * transaction, so berthd keeps serving and writing while it runs and the
 * copy is a consistent store. DEST is first made as an empty folder (so
 * nothing existing is overwritten), the copy is written into a temporary
 * folder beside it, forced to disk, then renamed over the empty DEST: DEST
 * never holds a partial store.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/log.h"

struct copy_job {
	MDB_env *env;
	const char *dir;
	unsigned flags;
	int rc;
	bool finished;          /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *
copy_main(void *arg)
{
	struct copy_job *j = arg;
	int rc = mdb_env_copy2(j->env, j->dir, j->flags);

	pthread_mutex_lock(&j->lock);
	j->rc = rc;
	j->finished = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static int
fsync_path(const char *path, bool dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (fsync(fd) != 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Removes a temporary copy folder (it holds data.mdb at most). */
static void
remove_tmp(const char *dir)
{
	char f[PATH_MAX];

	if ((size_t)snprintf(f, sizeof(f), "%s/data.mdb", dir) < sizeof(f))
		(void)unlink(f);
	if ((size_t)snprintf(f, sizeof(f), "%s/lock.mdb", dir) < sizeof(f))
		(void)unlink(f);
	(void)rmdir(dir);
}

int
store_backup(struct store *st, const char *dest, bool compact,
    store_progress_fn *progress, void *arg)
{
	struct copy_job j = { .env = st->env, .flags = compact ? MDB_CP_COMPACT : 0 };
	char tmp[PATH_MAX], file[PATH_MAX + 16], parent[PATH_MAX],
	    dst[PATH_MAX];
	struct store_stats s;
	struct stat sb;
	pthread_t t;
	char *slash;
	size_t n;
	int rc;

	if (dest == NULL || *dest == '\0')
		return STORE_E_INVALID;
	/* Room for "/data.mdb" after the temporary name. */
	n = strlen(dest);
	if (n + 32 >= sizeof(tmp))
		return STORE_E_INVALID;
	memcpy(dst, dest, n + 1);
	while (n > 1 && dst[n - 1] == '/')
		dst[--n] = '\0';
	rc = store_stats_get(st, &s);
	if (rc != 0)
		return rc;
	/*
	 * DEST is claimed first, as an empty folder (which is not a store):
	 * if it exists, or someone else takes it, nothing is overwritten.
	 * The finished copy is then renamed over this empty folder.
	 */
	if (mkdir(dst, 0700) != 0) {
		log_error("backup: %s: %s", dst, errno == EEXIST ?
		    "already exists" : strerror(errno));
		return errno == EEXIST ? STORE_E_INVALID : STORE_E_IO;
	}
	snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", dst);
	snprintf(parent, sizeof(parent), "%s", dst);
	if (mkdtemp(tmp) == NULL) {
		log_error("backup: cannot create a folder beside %s: %s", dst,
		    strerror(errno));
		rc = errno == ENOSPC ? STORE_E_NOSPC : STORE_E_IO;
		(void)rmdir(dst);
		return rc;
	}
	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	j.dir = tmp;
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.cond, NULL);
	if (pthread_create(&t, NULL, copy_main, &j) != 0) {
		rc = STORE_E_NOMEM;
		goto fail;
	}
	/* The copy gives no progress of its own: watch the file grow. */
	pthread_mutex_lock(&j.lock);
	while (!j.finished) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		(void)pthread_cond_timedwait(&j.cond, &j.lock, &ts);
		if (progress != NULL && !j.finished &&
		    stat(file, &sb) == 0) {
			pthread_mutex_unlock(&j.lock);
			progress(arg, (uint64_t)sb.st_size, s.map_used);
			pthread_mutex_lock(&j.lock);
		}
	}
	pthread_mutex_unlock(&j.lock);
	pthread_join(t, NULL);
	if (j.rc != 0) {
		rc = store_mdb_error(j.rc, "backup copy");
		goto fail;
	}
	if (chmod(file, 0600) != 0 || fsync_path(file, false) != 0 ||
	    fsync_path(tmp, true) != 0) {
		log_error("backup: %s: %s", file, strerror(errno));
		rc = errno == ENOSPC ? STORE_E_NOSPC : STORE_E_IO;
		goto fail;
	}
	if (rename(tmp, dst) != 0) {
		log_error("backup: rename to %s: %s", dst, strerror(errno));
		rc = STORE_E_IO;
		goto fail;
	}
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), ".");
	(void)fsync_path(parent, true);
	if (progress != NULL) {
		snprintf(file, sizeof(file), "%s/data.mdb", dst);
		if (stat(file, &sb) == 0)
			progress(arg, (uint64_t)sb.st_size, (uint64_t)sb.st_size);
	}
	pthread_mutex_destroy(&j.lock);
	pthread_cond_destroy(&j.cond);
	return 0;
fail:
	remove_tmp(tmp);
	(void)rmdir(dst);       /* our empty claim, unless the copy got there */
	pthread_mutex_destroy(&j.lock);
	pthread_cond_destroy(&j.cond);
	return rc;
}
