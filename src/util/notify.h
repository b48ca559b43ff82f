/*
 * The service manager's readiness protocol (sd_notify(3)): a datagram such
 * as "READY=1" to the unix socket named by $NOTIFY_SOCKET ("@" starts an
 * abstract name). The protocol is small and stable, and speaking it here
 * keeps libsystemd and the six libraries it loads out of berthd's resident
 * size (docs/PERFORMANCE.md). Nothing happens without $NOTIFY_SOCKET.
 */
#ifndef BERTH_NOTIFY_H
#define BERTH_NOTIFY_H

/* Sends state ("READY=1", "RELOADING=1", "STOPPING=1", ...); best effort. */
void service_notify(const char *state);

#endif
