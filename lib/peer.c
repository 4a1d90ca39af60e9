#include "peer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#define DIAG_TIMEOUT_MS 1000
#define PROC_LINE_MAX 512

/* Both ends of fd: ours (server side) and the peer's (client side). */
static int endpoints(int fd, struct sockaddr_in *local, struct sockaddr_in *peer)
{
	socklen_t len = sizeof(*local);

	/* Zeroed: a shorter address than asked for leaves no byte unset. */
	memset(local, 0, sizeof(*local));
	memset(peer, 0, sizeof(*peer));
	if (getsockname(fd, (struct sockaddr *)local, &len) < 0)
		return -errno;
	if (local->sin_family != AF_INET || len < sizeof(*local))
		return -EAFNOSUPPORT;
	len = sizeof(*peer);
	if (getpeername(fd, (struct sockaddr *)peer, &len) < 0)
		return -errno;
	if (peer->sin_family != AF_INET || len < sizeof(*peer))
		return -EAFNOSUPPORT;
	return 0;
}

int entra_peer_tcp_uid_diag(int fd, uid_t *uid)
{
	struct sockaddr_in local, peer;
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct timeval tv = { DIAG_TIMEOUT_MS / 1000, (DIAG_TIMEOUT_MS % 1000) * 1000 };
	union {
		struct nlmsghdr nlh;
		/* cppcheck-suppress unusedStructMember ; it sizes the buffer */
		char bytes[8192];
	} answer;
	ssize_t n;
	int nl, rc;

	rc = endpoints(fd, &local, &peer);
	if (rc < 0)
		return rc;
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	/* An exact lookup (no NLM_F_DUMP): the socket whose local end is the
	 * peer's address and whose remote end is ours, i.e. the client's. */
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.nlh.nlmsg_seq = 1;
	msg.req.sdiag_family = AF_INET;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = ~0U;
	msg.req.id.idiag_sport = peer.sin_port;
	msg.req.id.idiag_dport = local.sin_port;
	msg.req.id.idiag_src[0] = peer.sin_addr.s_addr;
	msg.req.id.idiag_dst[0] = local.sin_addr.s_addr;
	msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		rc = -errno;
		goto out;
	}
	n = recv(nl, &answer, sizeof(answer), 0);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	rc = -EPROTO;
	for (struct nlmsghdr *h = &answer.nlh; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				break;
			rc = e->error < 0 ? e->error : -EPROTO;
			break;
		}
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
		    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
			const struct inet_diag_msg *d = NLMSG_DATA(h);

			/* The kernel matched the 4-tuple; check it anyway. */
			if (d->id.idiag_sport != peer.sin_port || d->id.idiag_dport != local.sin_port ||
			    d->id.idiag_src[0] != peer.sin_addr.s_addr ||
			    d->id.idiag_dst[0] != local.sin_addr.s_addr) {
				rc = -ENOENT;
				break;
			}
			if (d->idiag_inode == 0) {
				rc = -ENOENT;
				break;
			}
			*uid = (uid_t)d->idiag_uid;
			rc = 0;
			break;
		}
	}
out:
	close(nl);
	return rc;
}

int entra_peer_tcp_uid_procfs(int fd, uid_t *uid)
{
	struct sockaddr_in local, peer;
	char line[PROC_LINE_MAX];
	FILE *f;
	int rc;

	rc = endpoints(fd, &local, &peer);
	if (rc < 0)
		return rc;
	f = fopen("/proc/net/tcp", "re");
	if (f == NULL)
		return -errno;
	rc = -ENOENT;
	/* "sl local rem st tx:rx tr:when retr uid timeout inode": addresses
	 * are the raw 32-bit value in hex, ports in host order. */
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned int laddr, lport, raddr, rport, st;
		unsigned long owner, inode;
		char rest[PROC_LINE_MAX];

		/* The kernel's own format, every field in range by construction. */
		/* NOLINTNEXTLINE(cert-err34-c) */
		if (sscanf(line, " %*u: %8X:%4X %8X:%4X %2X %*s %*s %*s %lu %*d %lu%511[^\n]",
			   &laddr, &lport, &raddr, &rport, &st, &owner, &inode, rest) < 7)
			continue;
		if (laddr != peer.sin_addr.s_addr || lport != ntohs(peer.sin_port) ||
		    raddr != local.sin_addr.s_addr || rport != ntohs(local.sin_port))
			continue;
		if (inode == 0)
			break;
		*uid = (uid_t)owner;
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

int entra_peer_tcp_uid(int fd, uid_t *uid)
{
	int rc = entra_peer_tcp_uid_diag(fd, uid);

	/* Fall back only when the netlink interface itself is missing (no
	 * inet_diag module, a seccomp filter); a clear "no such socket" from
	 * the kernel is final. */
	if (rc == -EPROTONOSUPPORT || rc == -EAFNOSUPPORT || rc == -EACCES || rc == -EPERM ||
	    rc == -EOPNOTSUPP || rc == -EINVAL)
		rc = entra_peer_tcp_uid_procfs(fd, uid);
	return rc;
}

static int cmp_uid(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return x < y ? -1 : x > y;
}

static int add_uid(uid_t **list, size_t *count, size_t *cap, uid_t uid)
{
	if (*count == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		uid_t *n = realloc(*list, ncap * sizeof(uid_t));

		if (n == NULL)
			return -ENOMEM;
		*list = n;
		*cap = ncap;
	}
	(*list)[(*count)++] = uid;
	return 0;
}

int entra_running_uids(const char *proc_dir, uid_t **uids, size_t *count)
{
	char path[512], line[PROC_LINE_MAX];
	uid_t *list = NULL;
	size_t n = 0, cap = 0, out = 0;
	struct dirent *de;
	DIR *dir;
	int rc = 0;

	*uids = NULL;
	*count = 0;
	if (proc_dir == NULL)
		proc_dir = "/proc";
	dir = opendir(proc_dir);
	if (dir == NULL)
		return -errno;
	while ((de = readdir(dir)) != NULL && rc == 0) {
		unsigned long ruid, euid;
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", proc_dir, de->d_name);
		f = fopen(path, "re");
		if (f == NULL)
			continue; /* the process exited meanwhile */
		while (fgets(line, sizeof(line), f) != NULL) {
			/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
			if (sscanf(line, "Uid: %lu %lu", &ruid, &euid) == 2) {
				rc = add_uid(&list, &n, &cap, (uid_t)ruid);
				if (rc == 0 && euid != ruid)
					rc = add_uid(&list, &n, &cap, (uid_t)euid);
				break;
			}
		}
		fclose(f);
	}
	closedir(dir);
	if (rc < 0) {
		free(list);
		return rc;
	}
	if (n > 0) {
		qsort(list, n, sizeof(uid_t), cmp_uid);
		for (size_t i = 0; i < n; i++)
			if (out == 0 || list[out - 1] != list[i])
				list[out++] = list[i];
	}
	*uids = list;
	*count = out;
	return 0;
}

int entra_uid_in_list(const uid_t *uids, size_t count, uid_t uid)
{
	return uids != NULL && bsearch(&uid, uids, count, sizeof(uid_t), cmp_uid) != NULL;
}
