/*
 * kairo-native: the two system calls kairo-gw needs and Node does not expose.
 *
 *   peerCred(fd)              getsockopt(SO_PEERCRED) on a connected AF_UNIX socket: who is at the
 *                             other end of the control socket (pid, uid, gid), for the audit log.
 *   notify(socketPath, msg)   one datagram on an AF_UNIX SOCK_DGRAM socket: sd_notify(3)'s
 *                             transport (READY=1, WATCHDOG=1, STOPPING=1 ...) to $NOTIFY_SOCKET.
 *
 * Why our own addon: Node has no SO_PEERCRED (nor getpeereid) and no Unix datagram sockets; the
 * npm packages that offer them are unmaintained, pull in C++ toolchains of their own or do far
 * more than two syscalls. This is plain C against N-API (node_api.h), so one build works for
 * every Node version from 20 on (NAPI_VERSION 8), and it links nothing but libc.
 *
 * Errors are thrown as Node-style errno errors: `code` is the errno name ('EBADF'), `errno` the
 * negated number (as in Node's own errors), `syscall` names the call, and the message says which
 * fd or address it was about. Both functions are synchronous: each is one or two syscalls that
 * do not wait, except sendto on a full receive queue, which SO_SNDTIMEO bounds to 1 s.
 */
#include <node_api.h>

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* The longest NOTIFY_SOCKET value we accept: sun_path is 108 bytes on Linux. */
#define MAX_ADDRESS_BYTES 108

static const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n != NULL) return n;
#endif
  switch (e) {
    case EACCES: return "EACCES";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case EMSGSIZE: return "EMSGSIZE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTCONN: return "ENOTCONN";
    case ENOTDIR: return "ENOTDIR";
    case ENOTSOCK: return "ENOTSOCK";
    case EPERM: return "EPERM";
    case EPROTOTYPE: return "EPROTOTYPE";
    default: return "EUNKNOWN";
  }
}

/* Throws an Error { code, errno, syscall } with "<syscall> <what>: <CODE> (<strerror>)". */
static void throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  char msg[320];
  const char *name = errno_name(err);
  snprintf(msg, sizeof msg, "%s %s: %s (%s)", syscall, what, name, strerror(err));
  napi_value code, message, error, num, sys;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok) {
    napi_throw_error(env, name, msg);
    return;
  }
  if (napi_create_int32(env, -err, &num) == napi_ok) napi_set_named_property(env, error, "errno", num);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys) == napi_ok) napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
}

/* Reads argument `i` as a JS string into a malloc'ed, NUL-terminated buffer (caller frees).
 * Returns NULL with a TypeError thrown when it is not a string, or `max` bytes are exceeded
 * (then *too_long is set and nothing is thrown). */
static char *get_string(napi_env env, napi_value v, const char *argname, size_t max, size_t *len, int *too_long) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char msg[96];
    snprintf(msg, sizeof msg, "The \"%s\" argument must be a string", argname);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return NULL;
  }
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    napi_throw_error(env, NULL, "cannot read a string argument");
    return NULL;
  }
  if (n > max) {
    *too_long = 1;
    return NULL;
  }
  char *buf = malloc(n + 1);
  if (buf == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, v, buf, n + 1, len) != napi_ok) {
    free(buf);
    napi_throw_error(env, NULL, "cannot read a string argument");
    return NULL;
  }
  return buf;
}

/* peerCred(fd: number): { pid, uid, gid } */
static napi_value PeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype t = napi_undefined;
  double d = -1;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, argv[0], &d) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "The \"fd\" argument must be a number");
    return NULL;
  }
  if (!(d >= 0 && d <= 2147483647.0) || floor(d) != d) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "The \"fd\" argument must be an integer from 0 to 2147483647");
    return NULL;
  }
  int fd = (int)d;
  char what[48];
  snprintf(what, sizeof what, "on fd %d", fd);

  int domain = 0;
  socklen_t dlen = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) != 0) {
    throw_errno(env, errno, "getsockopt(SO_DOMAIN)", what);
    return NULL;
  }
  if (domain != AF_UNIX) {
    /* Other families answer SO_PEERCRED with pid 0, uid/gid -1: refuse instead of lying. */
    throw_errno(env, EAFNOSUPPORT, "getsockopt(SO_PEERCRED)", what);
    return NULL;
  }
  struct ucred cred;
  socklen_t clen = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
    throw_errno(env, errno, "getsockopt(SO_PEERCRED)", what);
    return NULL;
  }
  if (cred.pid == 0 && cred.uid == (uid_t)-1 && cred.gid == (gid_t)-1) {
    /* An AF_UNIX socket that never connected or listened has no peer credentials. */
    throw_errno(env, ENOTCONN, "getsockopt(SO_PEERCRED)", what);
    return NULL;
  }

  napi_value obj, pid, uid, gid;
  if (napi_create_object(env, &obj) != napi_ok ||
      napi_create_int32(env, (int32_t)cred.pid, &pid) != napi_ok ||
      napi_create_uint32(env, (uint32_t)cred.uid, &uid) != napi_ok ||
      napi_create_uint32(env, (uint32_t)cred.gid, &gid) != napi_ok ||
      napi_set_named_property(env, obj, "pid", pid) != napi_ok ||
      napi_set_named_property(env, obj, "uid", uid) != napi_ok ||
      napi_set_named_property(env, obj, "gid", gid) != napi_ok) {
    napi_throw_error(env, NULL, "peerCred: cannot build the result object");
    return NULL;
  }
  return obj;
}

/* notify(socketPath: string, message: string): undefined */
static napi_value Notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "notify(socketPath, message) takes two strings");
    return NULL;
  }
  size_t plen = 0, mlen = 0;
  int too_long = 0;
  char *path = get_string(env, argv[0], "socketPath", MAX_ADDRESS_BYTES, &plen, &too_long);
  if (path == NULL) {
    if (too_long) throw_errno(env, ENAMETOOLONG, "sendto", "to NOTIFY_SOCKET (longer than a Unix socket address)");
    return NULL;
  }
  char *msg = get_string(env, argv[1], "message", (size_t)1 << 30, &mlen, &too_long);
  if (msg == NULL) {
    if (too_long) throw_errno(env, EMSGSIZE, "sendto", "to NOTIFY_SOCKET");
    free(path);
    return NULL;
  }

  char what[MAX_ADDRESS_BYTES + 8];
  snprintf(what, sizeof what, "to %s", path);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  socklen_t salen = 0;
  int err = 0;
  if (plen >= 2 && path[0] == '@') {
    /* Abstract namespace: '@' stands for the leading NUL; the address is exactly plen bytes. */
    memcpy(sa.sun_path + 1, path + 1, plen - 1);
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  } else if (plen >= 2 && path[0] == '/' && memchr(path, '\0', plen) == NULL) {
    if (plen >= sizeof sa.sun_path) {
      err = ENAMETOOLONG;
    } else {
      memcpy(sa.sun_path, path, plen);
      salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    }
  } else {
    err = EINVAL; /* empty, relative, a bare '@', or a NUL inside a path */
  }
  if (err != 0) {
    throw_errno(env, err, "sendto", what);
    free(path);
    free(msg);
    return NULL;
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket(AF_UNIX, SOCK_DGRAM)", what);
    free(path);
    free(msg);
    return NULL;
  }
  /* A receiver that stopped reading must not hang the event loop: give up after 1 s. */
  struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ssize_t n;
  do {
    n = sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  } while (n < 0 && errno == EINTR);
  err = n < 0 ? errno : 0;
  close(fd);
  if (err != 0) throw_errno(env, err, "sendto", what);
  free(path);
  free(msg);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "peerCred", NULL, PeerCred, NULL, NULL, NULL, napi_enumerable, NULL },
    { "notify", NULL, Notify, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
