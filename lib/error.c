/* libvstor - thread-local last error
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct tls_error {
  const char *call;      /* public call in progress in this thread */
  int code, errnum;
  char *msg;
};
static __thread struct tls_error tls;

/* Frees the message when the thread exits (glibc runs __thread
 * destructors only for C++; use a key). */
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static void tls_free(void *p) { (void)p; free(tls.msg); tls.msg = NULL; }
static void tls_init(void) { pthread_key_create(&tls_key, tls_free); }
__attribute__((constructor)) static void tls_register(void)
{
  pthread_once(&tls_once, tls_init);
}
__attribute__((destructor)) static void tls_main_free(void)
{
  free(tls.msg);
  tls.msg = NULL;
}

void vstor__enter(const char *call) { tls.call = call; }

void vstor__verror(int code, int errnum, const char *fmt, va_list ap)
{
  char *body = NULL;
  if (vasprintf(&body, fmt, ap) < 0)
    body = NULL;
  char *msg = NULL;
  if (asprintf(&msg, "%s: %s", tls.call ? tls.call : "libvstor",
               body ? body : "(out of memory)") < 0)
    msg = NULL;
  free(body);
  free(tls.msg);
  tls.msg = msg;
  pthread_setspecific(tls_key, (void *)1); /* free at thread exit */
  tls.code = code;
  tls.errnum = errnum;
}

int vstor__error(int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vstor__verror(code, errnum, fmt, ap);
  va_end(ap);
  return -1;
}

void vstor__error_get(int *code, int *errnum, char **msg)
{
  *code = tls.code;
  *errnum = tls.errnum;
  *msg = tls.msg ? strdup(tls.msg) : NULL;
}

void vstor__error_set_raw(int code, int errnum, const char *msg)
{
  free(tls.msg);
  tls.msg = msg ? strdup(msg) : NULL;
  pthread_setspecific(tls_key, (void *)1);
  tls.code = code;
  tls.errnum = errnum;
}


VSTOR_API const char *vstor_last_error(void)
{
  return tls.msg;
}
VSTOR_API int vstor_last_errno(void) { return tls.errnum; }
VSTOR_API int vstor_last_code(void) { return tls.code; }

static const char *const code_names[] = {
  "OK", "INVAL", "NOENT", "EXIST", "BUSY", "NOSPC", "PERM", "NOTSUP",
  "AGAIN", "TIMEOUT", "STATE", "BACKEND", "IO", "CANCELLED", "INTERNAL",
  "PARTIAL",
};
VSTOR_API const char *vstor_code_name(int code)
{
  if (code < 0 || (size_t)code >= sizeof code_names / sizeof *code_names)
    return NULL;
  return code_names[code];
}

int vstor__check_flags(unsigned flags, unsigned allowed, const char *what)
{
  if (flags & ~allowed)
    return vstor__error(VSTOR_E_INVAL, EINVAL,
                        "%s: unknown flag bits 0x%x", what, flags & ~allowed);
  return 0;
}
