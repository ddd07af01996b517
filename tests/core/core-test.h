/* libvstor core tests - shared assertions (cmocka)
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSTOR_CORE_TEST_H
#define VSTOR_CORE_TEST_H
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "vstor.h"

/* The thread's last error is (code, errnum), its message starts with
 * "<call>: " and, when `quoted` is not NULL, contains "\"<quoted>\"". */
#define assert_error(code, errnum, call, quoted) \
  check_error_(code, errnum, call, quoted, __FILE__, __LINE__)

static inline void check_error_(int code, int errnum, const char *call, const char *quoted,
                                const char *file, int line)
{
  const char *m = vstor_last_error();
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s: ", call);
  if (vstor_last_code() != code || (errnum >= 0 && vstor_last_errno() != errnum) || !m ||
      strncmp(m, prefix, strlen(prefix)) != 0) {
    print_error("%s:%d: expected %s errno %d from %s, got %s errno %d: %s\n", file, line,
                vstor_code_name(code), errnum, call, vstor_code_name(vstor_last_code()),
                vstor_last_errno(), m ? m : "(no message)");
    fail();
  }
  if (quoted) {
    /* the message shows the input with control characters as '?' and
     * cut after 124 characters with "..." (vstor-uri(7)) */
    size_t len = strlen(quoted), keep = len > 124 ? 124 : len;
    char *q = malloc(keep + 6);
    q[0] = '"';
    for (size_t i = 0; i < keep; i++)
      q[1 + i] = (unsigned char)quoted[i] < 0x20 || quoted[i] == 0x7f ? '?' : quoted[i];
    strcpy(q + 1 + keep, len > keep ? "...\"" : "\"");
    if (!strstr(m, q)) {
      print_error("%s:%d: message does not quote %s: %s\n", file, line, q, m);
      free(q);
      fail();
    }
    free(q);
  }
}

/* Put a recognisable error in this thread's slot (a failing call). */
static inline void set_marker_error(void)
{
  uint64_t out;
  assert_int_equal(vstor_parse_size("marker", 0, &out), -1);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
}
#endif
