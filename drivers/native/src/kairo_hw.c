/*
 * kairo-hw: the kernel interfaces kairo-gw's physical controls need and Node does not expose.
 *
 *   GPIO      the GPIO character device, uAPI v2 (<linux/gpio.h>): chip and line info, line
 *             requests (direction, bias, drive, active-low, edge detection, debounce), get/set of
 *             values, reconfiguration, and edge events read from the line request's fd.
 *   rfkill    /dev/rfkill: struct rfkill_event read (8 bytes, or 9+ on kernels that send the
 *             hard-block reasons) and written (block/unblock one switch, or all of a type).
 *   watch     a uv_poll handle on an fd (line request, /dev/rfkill) that calls back into JS
 *             when it is readable, on Node's own event loop: no thread, no polling timer.
 *   rtnetlink RTM_NEWLINK with IFF_UP set or cleared, acknowledged (NLM_F_ACK), and RTM_GETLINK
 *             for the flags and operstate of an interface.
 *
 * Why our own addon: Node has no ioctl(2), and the GPIO v2 uAPI is ioctls on a character device;
 * the kernels that gpio-sim needs (and current Raspberry Pi kernels) have only v2, which
 * libgpiod 1.x and its Node bindings cannot drive. The rfkill device must be read without
 * blocking a libuv threadpool thread forever (fs.read on a character device would), so it is
 * watched here like the line fds. rtnetlink is one request and one ACK on a socket Node cannot
 * open (AF_NETLINK); spawning `ip link set` costs milliseconds, this costs microseconds.
 *
 * Plain C against N-API (node_api.h, NAPI_VERSION 8) plus libuv from Node's own headers; it
 * links nothing but libc. Every call is synchronous and does not block: GPIO ioctls return at
 * once, fds are non-blocking, and the netlink ACK is written by the kernel before sendmsg returns
 * (SO_RCVTIMEO bounds the wait to 1 s all the same).
 *
 * Errors are Node-style errno errors: `code` is the errno name ('ENOENT'), `errno` the negated
 * number, `syscall` names the call, and the message names the device or interface.
 */
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/gpio.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define MAX_PATH_BYTES 4096

/* ---------------------------------------------------------------------------------------------
 * Errors and arguments */

static const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n != NULL) return n;
#endif
  switch (e) {
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EBUSY: return "EBUSY";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENODEV: return "ENODEV";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case ENOTSUP: return "ENOTSUP";
    case ENOTTY: return "ENOTTY";
    case ENXIO: return "ENXIO";
    case EPERM: return "EPERM";
    case EPROTO: return "EPROTO";
    case ERANGE: return "ERANGE";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "EUNKNOWN";
  }
}

/* Throws an Error { code, errno, syscall } with "<syscall> <what>: <CODE> (<strerror>)[: detail]". */
static void throw_errno_detail(napi_env env, int err, const char *syscall, const char *what, const char *detail) {
  char msg[1024];
  const char *name = errno_name(err);
  if (detail != NULL && detail[0] != '\0')
    snprintf(msg, sizeof msg, "%s %s: %s (%s): %s", syscall, what, name, strerror(err), detail);
  else
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

static void throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  throw_errno_detail(env, err, syscall, what, NULL);
}

static void throw_type(napi_env env, const char *argname, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", argname, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

/* An integer in [min, max] from argument v; 0 with an exception thrown otherwise. */
static int get_int(napi_env env, napi_value v, const char *argname, double min, double max, int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, argname, "a number");
    return 0;
  }
  if (!(d >= min && d <= max) || floor(d) != d) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument must be an integer from %.0f to %.0f", argname, min, max);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  int64_t x;
  if (!get_int(env, v, "fd", 0, INT_MAX, &x)) return 0;
  *fd = (int)x;
  return 1;
}

static int get_bool(napi_env env, napi_value v, const char *argname, bool *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean || napi_get_value_bool(env, v, out) != napi_ok) {
    throw_type(env, argname, "a boolean");
    return 0;
  }
  return 1;
}

/* A string argument into buf (NUL-terminated). Too long or containing NUL: RangeError. */
static int get_string(napi_env env, napi_value v, const char *argname, char *buf, size_t bufsize) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    throw_type(env, argname, "a string");
    return 0;
  }
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    napi_throw_error(env, NULL, "cannot read a string argument");
    return 0;
  }
  if (n >= bufsize) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument is %zu bytes; at most %zu fit", argname, n, bufsize - 1);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  if (napi_get_value_string_utf8(env, v, buf, bufsize, &n) != napi_ok) {
    napi_throw_error(env, NULL, "cannot read a string argument");
    return 0;
  }
  if (strlen(buf) != n) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument must not contain NUL characters", argname);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  return 1;
}

/* Reads the JS array v of 0/1 (any non-zero number is 1) into a bitmap; its length in *n. */
static int get_bits(napi_env env, napi_value v, const char *argname, uint32_t max_len, uint64_t *bits, uint32_t *n) {
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array) {
    throw_type(env, argname, "an array of numbers");
    return 0;
  }
  uint32_t len = 0;
  napi_get_array_length(env, v, &len);
  if (len > max_len) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument has %u entries; at most %u", argname, len, max_len);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  uint64_t b = 0;
  for (uint32_t i = 0; i < len; i++) {
    napi_value e;
    double d;
    napi_valuetype t;
    if (napi_get_element(env, v, i, &e) != napi_ok || napi_typeof(env, e, &t) != napi_ok || t != napi_number ||
        napi_get_value_double(env, e, &d) != napi_ok) {
      throw_type(env, argname, "an array of numbers");
      return 0;
    }
    if (d != 0) b |= (uint64_t)1 << i;
  }
  *bits = b;
  *n = len;
  return 1;
}

static int set_str(napi_env env, napi_value obj, const char *key, const char *s, size_t max) {
  napi_value v;
  return napi_create_string_utf8(env, s, strnlen(s, max), &v) == napi_ok && napi_set_named_property(env, obj, key, v) == napi_ok;
}

static int set_num(napi_env env, napi_value obj, const char *key, double d) {
  napi_value v;
  return napi_create_double(env, d, &v) == napi_ok && napi_set_named_property(env, obj, key, v) == napi_ok;
}

static int set_bool(napi_env env, napi_value obj, const char *key, bool b) {
  napi_value v;
  return napi_get_boolean(env, b, &v) == napi_ok && napi_set_named_property(env, obj, key, v) == napi_ok;
}

#define ARGS(n)                                                                          \
  size_t argc = (n);                                                                     \
  napi_value argv[(n) > 0 ? (n) : 1];                                                    \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;      \
  for (size_t i_ = argc; i_ < (n); i_++) napi_get_undefined(env, &argv[i_]);

static int open_chip(napi_env env, const char *path) {
  int fd;
  do {
    fd = open(path, O_RDWR | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(env, errno, "open", path);
  return fd;
}

static int xioctl(int fd, unsigned long req, void *arg) {
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

/* ---------------------------------------------------------------------------------------------
 * GPIO: chips and lines */

/* gpioChipInfo(path): { name, label, lines } */
static napi_value GpioChipInfo(napi_env env, napi_callback_info info) {
  ARGS(1);
  char path[MAX_PATH_BYTES];
  if (!get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  int fd = open_chip(env, path);
  if (fd < 0) return NULL;
  struct gpiochip_info ci;
  memset(&ci, 0, sizeof ci);
  int r = xioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &ci);
  int err = errno;
  close(fd);
  if (r < 0) {
    throw_errno(env, err, "ioctl(GPIO_GET_CHIPINFO_IOCTL)", path);
    return NULL;
  }
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok || !set_str(env, obj, "name", ci.name, sizeof ci.name) ||
      !set_str(env, obj, "label", ci.label, sizeof ci.label) || !set_num(env, obj, "lines", ci.lines)) {
    napi_throw_error(env, NULL, "gpioChipInfo: cannot build the result");
    return NULL;
  }
  return obj;
}

static napi_value line_info_object(napi_env env, const struct gpio_v2_line_info *li) {
  napi_value obj;
  uint32_t debounce = 0;
  for (uint32_t i = 0; i < li->num_attrs && i < GPIO_V2_LINE_NUM_ATTRS_MAX; i++)
    if (li->attrs[i].id == GPIO_V2_LINE_ATTR_ID_DEBOUNCE) debounce = li->attrs[i].debounce_period_us;
  if (napi_create_object(env, &obj) != napi_ok || !set_num(env, obj, "offset", li->offset) ||
      !set_str(env, obj, "name", li->name, sizeof li->name) || !set_str(env, obj, "consumer", li->consumer, sizeof li->consumer) ||
      !set_num(env, obj, "flags", (double)li->flags) || !set_num(env, obj, "debounceUs", debounce))
    return NULL;
  return obj;
}

/* gpioLineInfo(path, offset?): one line's info, or every line's (an array) without offset. */
static napi_value GpioLineInfo(napi_env env, napi_callback_info info) {
  ARGS(2);
  char path[MAX_PATH_BYTES];
  if (!get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  int64_t one = -1;
  if (t != napi_undefined && !get_int(env, argv[1], "offset", 0, UINT32_MAX, &one)) return NULL;
  int fd = open_chip(env, path);
  if (fd < 0) return NULL;
  char what[MAX_PATH_BYTES + 32];
  struct gpiochip_info ci;
  memset(&ci, 0, sizeof ci);
  if (xioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &ci) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "ioctl(GPIO_GET_CHIPINFO_IOCTL)", path);
    return NULL;
  }
  uint32_t from = one < 0 ? 0 : (uint32_t)one, to = one < 0 ? ci.lines : (uint32_t)one + 1;
  napi_value arr = NULL, result = NULL;
  if (one < 0 && napi_create_array_with_length(env, ci.lines, &arr) != napi_ok) {
    close(fd);
    return NULL;
  }
  for (uint32_t off = from; off < to; off++) {
    struct gpio_v2_line_info li;
    memset(&li, 0, sizeof li);
    li.offset = off;
    if (xioctl(fd, GPIO_V2_GET_LINEINFO_IOCTL, &li) < 0) {
      int err = errno;
      close(fd);
      snprintf(what, sizeof what, "%s line %u", path, off);
      throw_errno(env, err, "ioctl(GPIO_V2_GET_LINEINFO_IOCTL)", what);
      return NULL;
    }
    napi_value o = line_info_object(env, &li);
    if (o == NULL) {
      close(fd);
      napi_throw_error(env, NULL, "gpioLineInfo: cannot build the result");
      return NULL;
    }
    if (arr != NULL) napi_set_element(env, arr, off, o);
    else result = o;
  }
  close(fd);
  return arr != NULL ? arr : result;
}

/* Fills a line config: default flags for every line, output values and debounce as attributes
 * for all n lines (mask = the first n bits). */
static void fill_config(struct gpio_v2_line_config *cfg, uint32_t n, uint64_t flags, int has_values, uint64_t values, uint32_t debounce_us) {
  uint64_t all = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
  memset(cfg, 0, sizeof *cfg);
  cfg->flags = flags;
  if (has_values) {
    struct gpio_v2_line_config_attribute *a = &cfg->attrs[cfg->num_attrs++];
    a->attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    a->attr.values = values;
    a->mask = all;
  }
  if (debounce_us > 0) {
    struct gpio_v2_line_config_attribute *a = &cfg->attrs[cfg->num_attrs++];
    a->attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
    a->attr.debounce_period_us = debounce_us;
    a->mask = all;
  }
}

/* Reads optional args (values: number[] | null, debounceUs: number) for request and set-config. */
static int get_values_debounce(napi_env env, napi_value vvalues, napi_value vdebounce, uint32_t n, int *has_values, uint64_t *values, uint32_t *debounce) {
  napi_valuetype t;
  napi_typeof(env, vvalues, &t);
  *has_values = 0;
  *values = 0;
  if (t != napi_undefined && t != napi_null) {
    uint32_t len = 0;
    if (!get_bits(env, vvalues, "values", GPIO_V2_LINES_MAX, values, &len)) return 0;
    if (len != n) {
      char msg[128];
      snprintf(msg, sizeof msg, "The \"values\" argument has %u entries for %u lines", len, n);
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
      return 0;
    }
    *has_values = 1;
  }
  int64_t d = 0;
  napi_typeof(env, vdebounce, &t);
  if (t != napi_undefined && !get_int(env, vdebounce, "debounceUs", 0, UINT32_MAX, &d)) return 0;
  *debounce = (uint32_t)d;
  return 1;
}

/* gpioRequest(path, offsets: number[], consumer, flags, values: number[] | null, debounceUs,
 * eventBufferSize): the line request's fd (O_NONBLOCK, O_CLOEXEC). */
static napi_value GpioRequest(napi_env env, napi_callback_info info) {
  ARGS(7);
  char path[MAX_PATH_BYTES];
  char consumer[GPIO_MAX_NAME_SIZE];
  if (!get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  bool is_array = false;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) {
    throw_type(env, "offsets", "an array of numbers");
    return NULL;
  }
  struct gpio_v2_line_request req;
  memset(&req, 0, sizeof req);
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  if (n == 0 || n > GPIO_V2_LINES_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "The \"offsets\" argument must have 1 to 64 entries");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    int64_t off;
    if (napi_get_element(env, argv[1], i, &e) != napi_ok || !get_int(env, e, "offsets", 0, UINT32_MAX, &off)) return NULL;
    req.offsets[i] = (uint32_t)off;
  }
  req.num_lines = n;
  /* The kernel cuts the consumer label at 31 bytes itself; we do it so a long one is no error. */
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_string) {
    throw_type(env, "consumer", "a string");
    return NULL;
  }
  size_t clen = 0;
  napi_get_value_string_utf8(env, argv[2], consumer, sizeof consumer, &clen);
  memcpy(req.consumer, consumer, sizeof req.consumer);
  int64_t flags = 0, ebs = 0;
  if (!get_int(env, argv[3], "flags", 0, 4294967295.0, &flags)) return NULL;
  int has_values;
  uint64_t values;
  uint32_t debounce = 0;
  if (!get_values_debounce(env, argv[4], argv[5], n, &has_values, &values, &debounce)) return NULL;
  napi_typeof(env, argv[6], &t);
  if (t != napi_undefined && !get_int(env, argv[6], "eventBufferSize", 0, 65536, &ebs)) return NULL;
  fill_config(&req.config, n, (uint64_t)flags, has_values, values, debounce);
  req.event_buffer_size = (uint32_t)ebs;

  int chip = open_chip(env, path);
  if (chip < 0) return NULL;
  int r = xioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req);
  int err = errno;
  close(chip);
  if (r < 0) {
    char what[MAX_PATH_BYTES + 64];
    if (n == 1) snprintf(what, sizeof what, "%s line %u", path, req.offsets[0]);
    else snprintf(what, sizeof what, "%s lines %u..(%u lines)", path, req.offsets[0], n);
    throw_errno(env, err, "ioctl(GPIO_V2_GET_LINE_IOCTL)", what);
    return NULL;
  }
  int fd = req.fd;
  /* Line fds come O_CLOEXEC from the kernel; non-blocking so that reading events never waits. */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    err = errno;
    close(fd);
    throw_errno(env, err, "fcntl(O_NONBLOCK)", path);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* gpioSetConfig(fd, n, flags, values | null, debounceUs) */
static napi_value GpioSetConfig(napi_env env, napi_callback_info info) {
  ARGS(5);
  int fd;
  int64_t n, flags;
  if (!get_fd(env, argv[0], &fd) || !get_int(env, argv[1], "n", 1, GPIO_V2_LINES_MAX, &n) ||
      !get_int(env, argv[2], "flags", 0, 4294967295.0, &flags))
    return NULL;
  int has_values;
  uint64_t values;
  uint32_t debounce = 0;
  if (!get_values_debounce(env, argv[3], argv[4], (uint32_t)n, &has_values, &values, &debounce)) return NULL;
  struct gpio_v2_line_config cfg;
  fill_config(&cfg, (uint32_t)n, (uint64_t)flags, has_values, values, debounce);
  if (xioctl(fd, GPIO_V2_LINE_SET_CONFIG_IOCTL, &cfg) < 0) {
    char what[32];
    snprintf(what, sizeof what, "on fd %d", fd);
    throw_errno(env, errno, "ioctl(GPIO_V2_LINE_SET_CONFIG_IOCTL)", what);
  }
  return NULL;
}

/* gpioGet(fd, n): number[] (0/1 per requested line, logical values: active-low inverted). */
static napi_value GpioGet(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  int64_t n;
  if (!get_fd(env, argv[0], &fd) || !get_int(env, argv[1], "n", 1, GPIO_V2_LINES_MAX, &n)) return NULL;
  struct gpio_v2_line_values lv;
  lv.bits = 0;
  lv.mask = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
  if (xioctl(fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &lv) < 0) {
    char what[32];
    snprintf(what, sizeof what, "on fd %d", fd);
    throw_errno(env, errno, "ioctl(GPIO_V2_LINE_GET_VALUES_IOCTL)", what);
    return NULL;
  }
  napi_value arr;
  napi_create_array_with_length(env, (size_t)n, &arr);
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    napi_value v;
    napi_create_uint32(env, (uint32_t)((lv.bits >> i) & 1), &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

/* gpioSet(fd, values: number[]): sets the first values.length lines of the request. */
static napi_value GpioSet(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  uint64_t bits;
  uint32_t n;
  if (!get_bits(env, argv[1], "values", GPIO_V2_LINES_MAX, &bits, &n)) return NULL;
  if (n == 0) return NULL;
  struct gpio_v2_line_values lv;
  lv.bits = bits;
  lv.mask = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
  if (xioctl(fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &lv) < 0) {
    char what[32];
    snprintf(what, sizeof what, "on fd %d", fd);
    throw_errno(env, errno, "ioctl(GPIO_V2_LINE_SET_VALUES_IOCTL)", what);
  }
  return NULL;
}

/* gpioReadEvents(fd): every edge event queued now ([] when none): { offset, rising,
 * timestampNs: bigint, seqno, lineSeqno }. */
static napi_value GpioReadEvents(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t count = 0;
  struct gpio_v2_line_event evs[16];
  for (;;) {
    ssize_t r = read(fd, evs, sizeof evs);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      char what[32];
      snprintf(what, sizeof what, "on fd %d", fd);
      throw_errno(env, errno, "read(gpio line events)", what);
      return NULL;
    }
    if (r == 0) break;
    size_t k = (size_t)r / sizeof evs[0];
    for (size_t i = 0; i < k; i++) {
      napi_value o, ts;
      if (napi_create_object(env, &o) != napi_ok || !set_num(env, o, "offset", evs[i].offset) ||
          !set_bool(env, o, "rising", evs[i].id == GPIO_V2_LINE_EVENT_RISING_EDGE) ||
          napi_create_bigint_uint64(env, evs[i].timestamp_ns, &ts) != napi_ok || napi_set_named_property(env, o, "timestampNs", ts) != napi_ok ||
          !set_num(env, o, "seqno", evs[i].seqno) || !set_num(env, o, "lineSeqno", evs[i].line_seqno)) {
        napi_throw_error(env, NULL, "gpioReadEvents: cannot build the result");
        return NULL;
      }
      napi_set_element(env, arr, count++, o);
    }
    if ((size_t)r < sizeof evs) break;
  }
  return arr;
}

/* closeFd(fd) */
static napi_value CloseFd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  /* Linux closes the fd even when close() reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) {
    char what[32];
    snprintf(what, sizeof what, "fd %d", fd);
    throw_errno(env, errno, "close", what);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * rfkill. Our own copy of the event layout: older <linux/rfkill.h> lack the extended struct. */

struct kairo_rfkill_event {
  uint32_t idx;
  uint8_t type;
  uint8_t op;
  uint8_t soft;
  uint8_t hard;
  uint8_t hard_block_reasons; /* only when the kernel sends 9 bytes or more (5.11+) */
} __attribute__((packed));

#define RFKILL_V1_SIZE 8

/* rfkillOpen(path): fd, read-write, non-blocking. */
static napi_value RfkillOpen(napi_env env, napi_callback_info info) {
  ARGS(1);
  char path[MAX_PATH_BYTES];
  if (!get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  int fd;
  do {
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* rfkillRead(fd): every event queued now: { index, type, op, soft, hard, hardReasons }.
 * The kernel hands out one event per read(), of its own size (8 bytes before 5.11, 9 since);
 * a buffer larger than both is always accepted. */
static napi_value RfkillRead(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t count = 0;
  unsigned char buf[64];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      char what[32];
      snprintf(what, sizeof what, "on fd %d", fd);
      throw_errno(env, errno, "read(rfkill)", what);
      return NULL;
    }
    if (r == 0) break; /* not an rfkill device (EOF): nothing more will come */
    if (r < RFKILL_V1_SIZE) {
      char what[64];
      snprintf(what, sizeof what, "on fd %d (%zd bytes, an event has at least 8)", fd, r);
      throw_errno(env, EPROTO, "read(rfkill)", what);
      return NULL;
    }
    struct kairo_rfkill_event ev;
    memset(&ev, 0, sizeof ev);
    memcpy(&ev, buf, (size_t)r < sizeof ev ? (size_t)r : sizeof ev);
    napi_value o;
    if (napi_create_object(env, &o) != napi_ok || !set_num(env, o, "index", ev.idx) || !set_num(env, o, "type", ev.type) ||
        !set_num(env, o, "op", ev.op) || !set_bool(env, o, "soft", ev.soft != 0) || !set_bool(env, o, "hard", ev.hard != 0) ||
        !set_num(env, o, "hardReasons", r > RFKILL_V1_SIZE ? ev.hard_block_reasons : 0)) {
      napi_throw_error(env, NULL, "rfkillRead: cannot build the result");
      return NULL;
    }
    napi_set_element(env, arr, count++, o);
  }
  return arr;
}

/* rfkillWrite(fd, op, index, type, soft): one 8-byte event (every kernel takes that size).
 * op 2 (RFKILL_OP_CHANGE) with type 0 changes switch `index`; op 3 (CHANGE_ALL) every switch of
 * `type` (0 = all), and the default for switches of that type that appear later. */
static napi_value RfkillWrite(napi_env env, napi_callback_info info) {
  ARGS(5);
  int fd;
  int64_t op, idx, type;
  bool soft;
  if (!get_fd(env, argv[0], &fd) || !get_int(env, argv[1], "op", 0, 255, &op) || !get_int(env, argv[2], "index", 0, UINT32_MAX, &idx) ||
      !get_int(env, argv[3], "type", 0, 255, &type) || !get_bool(env, argv[4], "soft", &soft))
    return NULL;
  struct kairo_rfkill_event ev;
  memset(&ev, 0, sizeof ev);
  ev.idx = (uint32_t)idx;
  ev.type = (uint8_t)type;
  ev.op = (uint8_t)op;
  ev.soft = soft ? 1 : 0;
  ssize_t r;
  do {
    r = write(fd, &ev, RFKILL_V1_SIZE);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    char what[64];
    snprintf(what, sizeof what, "on fd %d (switch %u)", fd, (unsigned)idx);
    throw_errno(env, errno, "write(rfkill)", what);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * watch: a uv_poll handle that calls cb(null) when the fd is readable, cb('ECODE') on a poll
 * error. Level-triggered: the callback is called again while data is left unread. */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context actx;
  int stopped;   /* unwatch() or the finalizer ran: no more callbacks */
  int closed;    /* uv_close's callback ran: the handle's memory is libuv's no more */
  int finalized; /* the JS handle was collected */
} watcher_t;

static void watcher_closed(uv_handle_t *h) {
  watcher_t *w = (watcher_t *)h->data;
  w->closed = 1;
  if (w->finalized) free(w);
}

static void watcher_stop(watcher_t *w) {
  if (w->stopped) return;
  w->stopped = 1;
  /* uv_close on a poll handle takes the fd out of epoll at once, so the caller may close the
   * fd right after unwatch(); the memory is freed when libuv is done with it. */
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
  if (w->callback != NULL) napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (w->actx != NULL) napi_async_destroy(w->env, w->actx);
  w->actx = NULL;
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  watcher_t *w = (watcher_t *)data;
  w->finalized = 1;
  watcher_stop(w);
  if (w->closed) free(w);
}

static void watcher_ready(uv_poll_t *h, int status, int events) {
  watcher_t *w = (watcher_t *)h->data;
  if (w->stopped || w->callback == NULL) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv); /* make_callback wants an object as `this` */
    if (status < 0) napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &arg);
    else napi_get_null(env, &arg);
    /* make_callback, not call_function: it runs the nextTick and microtask queues afterwards,
     * so promises resolved by the callback settle now, as with any other I/O callback. */
    napi_status st = napi_make_callback(env, w->actx, recv, cb, 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* watch(fd, callback): an opaque handle for unwatch/watchRef. */
static napi_value Watch(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) {
    throw_type(env, "callback", "a function");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "watch: no event loop");
    return NULL;
  }
  watcher_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    throw_errno(env, ENOMEM, "watch", "");
    return NULL;
  }
  w->env = env;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    char what[32];
    snprintf(what, sizeof what, "on fd %d", fd);
    throw_errno(env, -r, "uv_poll_init", what);
    return NULL;
  }
  w->poll.data = w;
  napi_value name, handle;
  napi_create_string_utf8(env, "kairo-hw:watch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok || napi_async_init(env, NULL, name, &w->actx) != napi_ok) {
    w->finalized = 1;
    watcher_stop(w);
    napi_throw_error(env, NULL, "watch: cannot keep the callback");
    return NULL;
  }
  r = uv_poll_start(&w->poll, UV_READABLE, watcher_ready);
  if (r < 0) {
    w->finalized = 1;
    watcher_stop(w);
    char what[32];
    snprintf(what, sizeof what, "on fd %d", fd);
    throw_errno(env, -r, "uv_poll_start", what);
    return NULL;
  }
  if (napi_create_external(env, w, watcher_finalize, NULL, &handle) != napi_ok) {
    w->finalized = 1;
    watcher_stop(w);
    napi_throw_error(env, NULL, "watch: cannot create the handle");
    return NULL;
  }
  return handle;
}

static watcher_t *get_watcher(napi_env env, napi_value v) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    throw_type(env, "handle", "a handle from watch()");
    return NULL;
  }
  return (watcher_t *)p;
}

/* unwatch(handle): no more callbacks; idempotent. */
static napi_value Unwatch(napi_env env, napi_callback_info info) {
  ARGS(1);
  watcher_t *w = get_watcher(env, argv[0]);
  if (w != NULL) watcher_stop(w);
  return NULL;
}

/* watchRef(handle, ref): whether the watch keeps the event loop alive (it does by default). */
static napi_value WatchRef(napi_env env, napi_callback_info info) {
  ARGS(2);
  watcher_t *w = get_watcher(env, argv[0]);
  bool ref;
  if (w == NULL || !get_bool(env, argv[1], "ref", &ref)) return NULL;
  if (w->stopped) return NULL;
  if (ref) uv_ref((uv_handle_t *)&w->poll);
  else uv_unref((uv_handle_t *)&w->poll);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * rtnetlink */

static uint32_t nl_seq;
static unsigned char nl_buf[32768];

static void add_attr(struct nlmsghdr *h, size_t cap, unsigned short type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  size_t need = NLMSG_ALIGN(h->nlmsg_len) + RTA_SPACE(len);
  if (need > cap) return; /* callers size their buffers: cannot happen */
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  h->nlmsg_len = (uint32_t)need;
}

/* Sends `req` on a new NETLINK_ROUTE socket and reads until the answer to it: an NLMSG_ERROR
 * (ACK when error is 0) or, for a GET, the reply message. Returns a pointer to the reply in
 * nl_buf (NULL for an ACK) with *err = 0, or NULL with *err set (and detail filled with the
 * kernel's extended ACK message when there is one). */
static struct nlmsghdr *nl_talk(struct nlmsghdr *req, int *err, char *detail, size_t detail_len) {
  detail[0] = '\0';
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    *err = errno;
    return NULL;
  }
  struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  req->nlmsg_seq = ++nl_seq;
  ssize_t r;
  do {
    r = sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    *err = errno;
    close(fd);
    return NULL;
  }
  for (;;) {
    do {
      r = recv(fd, nl_buf, sizeof nl_buf, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      *err = errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      close(fd);
      return NULL;
    }
    if (r == 0) {
      *err = EPROTO;
      close(fd);
      return NULL;
    }
    size_t len = (size_t)r;
    for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != req->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) {
          *err = EPROTO;
        } else {
          *err = -e->error;
          if (*err != 0 && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
            /* Extended ACK: after the error (and the echoed request unless capped), attributes;
             * NLMSGERR_ATTR_MSG is the kernel's own sentence about what it refused. */
            size_t off = NLMSG_LENGTH(sizeof *e);
            if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
            while (off + sizeof(struct nlattr) <= h->nlmsg_len) {
              struct nlattr *a = (struct nlattr *)((char *)h + off);
              if (a->nla_len < sizeof *a || off + a->nla_len > h->nlmsg_len) break;
              if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
                size_t n = a->nla_len - sizeof *a;
                if (n >= detail_len) n = detail_len - 1;
                memcpy(detail, (char *)a + sizeof *a, n);
                detail[n] = '\0';
                break;
              }
              off += NLA_ALIGN(a->nla_len);
            }
          }
        }
        close(fd);
        return NULL;
      }
      close(fd);
      *err = 0;
      return h;
    }
  }
}

/* linkSetUp(ifname, up): RTM_NEWLINK with IFF_UP in ifi_change; returns once the kernel ACKs. */
static napi_value LinkSetUp(napi_env env, napi_callback_info info) {
  ARGS(2);
  char ifname[IF_NAMESIZE];
  bool up;
  if (!get_string(env, argv[0], "ifname", ifname, sizeof ifname) || !get_bool(env, argv[1], "up", &up)) return NULL;
  union {
    struct nlmsghdr h;
    unsigned char b[NLMSG_SPACE(sizeof(struct ifinfomsg)) + RTA_SPACE(IF_NAMESIZE) + 64];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  req.h.nlmsg_type = RTM_NEWLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  struct ifinfomsg *ifi = (struct ifinfomsg *)NLMSG_DATA(&req.h);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = 0; /* by name (IFLA_IFNAME): no lookup of our own that could race a rename */
  ifi->ifi_change = IFF_UP;
  ifi->ifi_flags = up ? IFF_UP : 0;
  add_attr(&req.h, sizeof req, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  int err = 0;
  char detail[256];
  nl_talk(&req.h, &err, detail, sizeof detail);
  if (err != 0) {
    char what[IF_NAMESIZE + 16];
    snprintf(what, sizeof what, "%s %s", ifname, up ? "up" : "down");
    throw_errno_detail(env, err, "rtnetlink(RTM_NEWLINK)", what, detail);
  }
  return NULL;
}

/* linkGet(ifname): { name, index, flags, operstate (IF_OPER_*), carrier (-1 unknown), mtu }. */
static napi_value LinkGet(napi_env env, napi_callback_info info) {
  ARGS(1);
  char ifname[IF_NAMESIZE];
  if (!get_string(env, argv[0], "ifname", ifname, sizeof ifname)) return NULL;
  union {
    struct nlmsghdr h;
    unsigned char b[NLMSG_SPACE(sizeof(struct ifinfomsg)) + RTA_SPACE(IF_NAMESIZE) + RTA_SPACE(4) + 64];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  req.h.nlmsg_type = RTM_GETLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  struct ifinfomsg *ifi = (struct ifinfomsg *)NLMSG_DATA(&req.h);
  ifi->ifi_family = AF_UNSPEC;
  add_attr(&req.h, sizeof req, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  /* Skip statistics: the reply stays small and cheap to build. */
  uint32_t mask = RTEXT_FILTER_SKIP_STATS;
  add_attr(&req.h, sizeof req, IFLA_EXT_MASK, &mask, sizeof mask);
  int err = 0;
  char detail[256];
  struct nlmsghdr *h = nl_talk(&req.h, &err, detail, sizeof detail);
  if (err == 0 && (h == NULL || h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))) err = EPROTO;
  if (err != 0) {
    throw_errno_detail(env, err, "rtnetlink(RTM_GETLINK)", ifname, detail);
    return NULL;
  }
  struct ifinfomsg *rep = (struct ifinfomsg *)NLMSG_DATA(h);
  char name[IF_NAMESIZE] = "";
  int operstate = 0, carrier = -1;
  uint32_t mtu = 0;
  int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *rep));
  for (struct rtattr *a = IFLA_RTA(rep); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
    size_t plen = RTA_PAYLOAD(a);
    switch (a->rta_type) {
      case IFLA_IFNAME:
        snprintf(name, sizeof name, "%.*s", (int)(plen < IF_NAMESIZE ? plen : IF_NAMESIZE - 1), (const char *)RTA_DATA(a));
        break;
      case IFLA_OPERSTATE:
        if (plen >= 1) operstate = *(const uint8_t *)RTA_DATA(a);
        break;
      case IFLA_CARRIER:
        if (plen >= 1) carrier = *(const uint8_t *)RTA_DATA(a);
        break;
      case IFLA_MTU:
        if (plen >= 4) memcpy(&mtu, RTA_DATA(a), 4);
        break;
    }
  }
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok || !set_str(env, obj, "name", name, sizeof name) || !set_num(env, obj, "index", rep->ifi_index) ||
      !set_num(env, obj, "flags", rep->ifi_flags) || !set_num(env, obj, "operstate", operstate) || !set_num(env, obj, "carrier", carrier) ||
      !set_num(env, obj, "mtu", mtu)) {
    napi_throw_error(env, NULL, "linkGet: cannot build the result");
    return NULL;
  }
  return obj;
}

/* ---------------------------------------------------------------------------------------------*/

static napi_value Init(napi_env env, napi_value exports) {
#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
  napi_property_descriptor props[] = {
    FN("gpioChipInfo", GpioChipInfo),
    FN("gpioLineInfo", GpioLineInfo),
    FN("gpioRequest", GpioRequest),
    FN("gpioSetConfig", GpioSetConfig),
    FN("gpioGet", GpioGet),
    FN("gpioSet", GpioSet),
    FN("gpioReadEvents", GpioReadEvents),
    FN("closeFd", CloseFd),
    FN("rfkillOpen", RfkillOpen),
    FN("rfkillRead", RfkillRead),
    FN("rfkillWrite", RfkillWrite),
    FN("watch", Watch),
    FN("unwatch", Unwatch),
    FN("watchRef", WatchRef),
    FN("linkSetUp", LinkSetUp),
    FN("linkGet", LinkGet),
  };
#undef FN
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
