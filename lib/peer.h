/* Who is at the other end of a loopback TCP connection, and which uids
 * still have processes. The token service uses these to hand a session's
 * tokens only to processes of the session's own uid. */
#ifndef ENTRA_PEER_H
#define ENTRA_PEER_H

#include <stddef.h>
#include <sys/types.h>

/* The uid owning the socket at the other end of the accepted TCP
 * connection fd (AF_INET, both ends on this host), asked of the kernel
 * with NETLINK_SOCK_DIAG/inet_diag, else read from /proc/net/tcp. Only a
 * socket still held by a process counts (inode != 0): a peer that already
 * closed (TIME_WAIT, orphan) has no owner. 0, or -ENOENT (no such socket
 * here: not a local peer, or gone), -EAFNOSUPPORT (not IPv4), -errno. */
int entra_peer_tcp_uid(int fd, uid_t *uid);

/* The two lookups on their own, for tests. */
int entra_peer_tcp_uid_diag(int fd, uid_t *uid);
int entra_peer_tcp_uid_procfs(int fd, uid_t *uid);

/* Every real and effective uid of the processes in /proc (proc_dir: NULL
 * for "/proc"), sorted ascending without duplicates, in *uids (malloc'd;
 * free it). 0 or -errno. */
int entra_running_uids(const char *proc_dir, uid_t **uids, size_t *count);

/* Binary search in a sorted list from entra_running_uids. */
int entra_uid_in_list(const uid_t *uids, size_t count, uid_t uid);

#endif
