/* libvstor core tests - vstor_parse_size
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include "core-test.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)
#define PiB (1024ull * TiB)

static uint64_t ok(const char *text, uint64_t cur)
{
  uint64_t out = 0xdeadbeef;
  int r = vstor_parse_size(text, cur, &out);
  if (r != 0) {
    print_error("\"%s\" refused: %s\n", text, vstor_last_error());
    fail();
  }
  return out;
}

static void bad(const char *text, uint64_t cur, int errnum)
{
  uint64_t out = 0xdeadbeef;
  assert_int_equal(vstor_parse_size(text, cur, &out), -1);
  assert_int_equal(out, 0xdeadbeef); /* nothing written on failure */
  assert_error(VSTOR_E_INVAL, errnum, "vstor_parse_size", text);
}

static void test_plain(void **state)
{
  (void)state;
  assert_int_equal(ok("0", 5), 0);
  assert_int_equal(ok("1", 0), 1);
  assert_int_equal(ok("1048576", 77), 1048576);
  assert_int_equal(ok("0000512", 0), 512);
}

static void test_units(void **state)
{
  (void)state;
  assert_int_equal(ok("1K", 0), KiB);
  assert_int_equal(ok("512M", 0), 512 * MiB);
  assert_int_equal(ok("50G", 0), 50 * GiB);
  assert_int_equal(ok("3T", 0), 3 * TiB);
  assert_int_equal(ok("2P", 0), 2 * PiB);
  assert_int_equal(ok("1E", 0), 1ull << 60);
  /* lower-case units and the iB / B suffixes */
  assert_int_equal(ok("10k", 0), 10 * KiB);
  assert_int_equal(ok("10g", 0), 10 * GiB);
  assert_int_equal(ok("10GiB", 0), 10 * GiB);
  assert_int_equal(ok("10GB", 0), 10 * GiB);
  assert_int_equal(ok("10Gib", 0), 10 * GiB);
  assert_int_equal(ok("10Gb", 0), 10 * GiB);
  assert_int_equal(ok("4KiB", 0), 4 * KiB);
  assert_int_equal(ok("7MB", 0), 7 * MiB);
}

static void test_relative(void **state)
{
  (void)state;
  assert_int_equal(ok("+10G", 50 * GiB), 60 * GiB);
  assert_int_equal(ok("+0", 123), 123);
  assert_int_equal(ok("+1", 0), 1);
  assert_int_equal(ok("+1MiB", 512), MiB + 512);
  /* absolute sizes ignore current */
  assert_int_equal(ok("1G", 50 * GiB), GiB);
  /* exactly the maximum */
  assert_int_equal(ok("+1", (uint64_t)INT64_MAX - 1), (uint64_t)INT64_MAX);
  assert_int_equal(ok("9223372036854775807", 0), (uint64_t)INT64_MAX);
}

static void test_overflow(void **state)
{
  (void)state;
  /* '+' arithmetic overflowing 64 bits, and past INT64_MAX */
  bad("+1", UINT64_MAX, ERANGE);
  bad("+1E", UINT64_MAX - (1ull << 59), ERANGE);
  bad("+1", (uint64_t)INT64_MAX, ERANGE);
  bad("+8E", 0, ERANGE);           /* 2^63: one past INT64_MAX */
  /* values that do not fit */
  bad("9223372036854775808", 0, ERANGE);
  bad("18446744073709551615", 0, ERANGE);
  bad("18446744073709551616", 0, ERANGE);
  bad("99999999999999999999999999999", 0, ERANGE);
  bad("16E", 0, ERANGE);
  bad("8192P", 0, ERANGE);
  bad("17179869184G", 0, ERANGE);  /* 2^34 G = 2^64 */
  bad("9007199254740992K", 0, ERANGE); /* 2^53 K = 2^63 */
}

static void test_malformed(void **state)
{
  (void)state;
  bad("", 0, EINVAL);
  bad("+", 0, EINVAL);
  bad("-1", 0, EINVAL);
  bad("-1G", 100 * GiB, EINVAL);
  bad("+-1G", 100 * GiB, EINVAL);
  bad("G", 0, EINVAL);
  bad("K10", 0, EINVAL);
  bad(" 10G", 0, EINVAL);
  bad("10G ", 0, EINVAL);
  bad("10 G", 0, EINVAL);
  bad("10X", 0, EINVAL);
  bad("10GiBx", 0, EINVAL);
  bad("10GG", 0, EINVAL);
  bad("10iB", 0, EINVAL);
  bad("1.5G", 0, EINVAL);
  bad("0x10", 0, EINVAL);
  bad("1e3", 0, EINVAL);
  bad("10G\n", 0, EINVAL);
  bad("++1", 0, EINVAL);
}

static void test_null(void **state)
{
  (void)state;
  uint64_t out;
  assert_int_equal(vstor_parse_size(NULL, 0, &out), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_parse_size", NULL);
  assert_int_equal(vstor_parse_size("1G", 0, NULL), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_parse_size", NULL);
}

static void test_success_keeps_error(void **state)
{
  (void)state;
  set_marker_error();
  char *before = strdup(vstor_last_error());
  assert_int_equal(ok("+10G", 0), 10 * GiB);
  assert_non_null(vstor_last_error());
  assert_string_equal(vstor_last_error(), before);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  free(before);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_plain),
    cmocka_unit_test(test_units),
    cmocka_unit_test(test_relative),
    cmocka_unit_test(test_overflow),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_null),
    cmocka_unit_test(test_success_keeps_error),
  };
  return cmocka_run_group_tests_name("parse-size", tests, NULL, NULL);
}
