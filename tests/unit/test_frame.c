/* Unit tests for frame: encode/decode round trip, byte-at-a-time input,
 * several frames in one read, raw payloads after the JSON object, and
 * every malformed frame refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static void round_trip_byte_by_byte(void **state)
{
	struct buf b;
	struct err e;
	buf_init(&b);
	json_t *body = json_pack("{s:s, s:i}", "name", "c", "signal", 15);
	assert_int_equal(frame_encode(&b, 7, "signal", body, &e), 0);
	assert_int_equal(frame_encode(&b, 0, "ready", NULL, &e), 0);
	struct frame_reader r;
	struct frame_msg m;
	frame_reader_init(&r);
	int got = 0;
	for (size_t i = 0; i < b.len; i++) {
		frame_reader_feed(&r, b.data + i, 1);
		int rc;
		while ((rc = frame_next(&r, &m, &e)) == 1) {
			if (got == 0) {
				assert_int_equal(m.id, 7);
				assert_string_equal(m.type, "signal");
				assert_true(json_equal(m.body, body));
			} else {
				assert_int_equal(m.id, 0);
				assert_string_equal(m.type, "ready");
				assert_int_equal(json_object_size(m.body), 0);
			}
			got++;
			frame_msg_fini(&m);
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(got, 2);
	frame_reader_fini(&r);
	json_decref(body);
	buf_fini(&b);
}

static int feed_raw(const void *bytes, size_t n, struct err *e)
{
	struct frame_reader r;
	struct frame_msg m;
	frame_reader_init(&r);
	frame_reader_feed(&r, bytes, n);
	int rc = frame_next(&r, &m, e);
	if (rc == 1)
		frame_msg_fini(&m);
	int was_broken = r.broken;
	frame_reader_fini(&r);
	return rc < 0 && was_broken ? rc : rc;
}

/* Feeds `json` behind its correct length prefix. */
static int feed_json(const char *json, struct err *e)
{
	size_t n = strlen(json);
	unsigned char *frame = malloc(n + 4);
	frame[0] = (unsigned char)(n >> 24);
	frame[1] = (unsigned char)(n >> 16);
	frame[2] = (unsigned char)(n >> 8);
	frame[3] = (unsigned char)n;
	memcpy(frame + 4, json, n);
	int rc = feed_raw(frame, n + 4, e);
	free(frame);
	return rc;
}

static void malformed_frames_are_refused(void **state)
{
	struct err e;
	static const unsigned char empty[] = {0, 0, 0, 0};
	static const unsigned char huge[] = {0, 0x10, 0, 1, '{'};
	assert_int_equal(feed_raw(empty, sizeof empty, &e), ERR_BAD_REQUEST);
	assert_non_null(strstr(e.msg, "empty"));
	assert_int_equal(feed_raw(huge, sizeof huge, &e), ERR_BAD_REQUEST);
	assert_non_null(strstr(e.msg, "1 MiB"));
	const char *bad[] = {"{x}", "[]", "{\"type\":\"a\"}", "{\"id\":1,\"type\":\"a\",\"body\":1}",
			     "{\"id\":-1,\"type\":\"a\"}", "{\"id\":1,\"id\":2,\"type\":\"a\"}",
			     "{\"id\":1,\"type\":7}", "{\"id\":\"1\",\"type\":\"a\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(feed_json(bad[i], &e), ERR_BAD_REQUEST);
	assert_int_equal(feed_json("{\"id\":1,\"type\":\"a\",\"body\":{}}", &e), 1);
}

/* Feeds `n` bytes of message (JSON and whatever follows) behind their
 * length prefix. */
static int feed_msg(const char *msg, size_t n, struct err *e)
{
	unsigned char *frame = malloc(n + 4);
	frame[0] = (unsigned char)(n >> 24);
	frame[1] = (unsigned char)(n >> 16);
	frame[2] = (unsigned char)(n >> 8);
	frame[3] = (unsigned char)n;
	memcpy(frame + 4, msg, n);
	int rc = feed_raw(frame, n + 4, e);
	free(frame);
	return rc;
}

static void payload_round_trip_byte_by_byte(void **state)
{
	static const char raw[] = {'{', 0, '}', (char)0xff, '\n', 'x'};
	struct buf b;
	struct err e;
	buf_init(&b);
	json_t *body = json_pack("{s:s, s:b}", "digest", "sha256:ab", "last", 1);
	assert_int_equal(frame_encode_payload(&b, 9, "blob_chunk", body, raw, sizeof raw, &e), 0);
	assert_int_equal(frame_encode(&b, 10, "signal", NULL, &e), 0);
	struct frame_reader r;
	struct frame_msg m;
	frame_reader_init(&r);
	int got = 0;
	for (size_t i = 0; i < b.len; i++) {
		frame_reader_feed(&r, b.data + i, 1);
		while (frame_next(&r, &m, &e) == 1) {
			if (got++ == 0) {
				assert_int_equal(m.id, 9);
				assert_true(json_equal(m.body, body));
				assert_int_equal(m.payload_len, sizeof raw);
				assert_memory_equal(m.payload, raw, sizeof raw);
			} else {
				assert_int_equal(m.id, 10);
				assert_null(m.payload);
				assert_int_equal(m.payload_len, 0);
			}
			frame_msg_fini(&m);
		}
	}
	assert_int_equal(got, 2);
	frame_reader_fini(&r);
	json_decref(body);
	buf_fini(&b);
}

static void payload_must_match_its_announced_size(void **state)
{
	struct err e;
	static const char ok[] = "{\"id\":1,\"type\":\"a\",\"payload\":3}A\0C";
	static const char ws[] = "{\"id\":1,\"type\":\"a\"} \r\n";
	assert_int_equal(feed_msg(ok, sizeof ok - 1, &e), 1);
	assert_int_equal(feed_msg(ws, sizeof ws - 1, &e), 1);
	static const char *const bad[] = {
	    "{\"id\":1,\"type\":\"a\",\"payload\":3}AB",     /* short */
	    "{\"id\":1,\"type\":\"a\",\"payload\":1}ABC",    /* long */
	    "{\"id\":1,\"type\":\"a\",\"payload\":-1}",      /* negative */
	    "{\"id\":1,\"type\":\"a\",\"payload\":\"3\"}ABC", /* not a number */
	    "{\"id\":1,\"type\":\"a\"}ABC",                   /* unannounced bytes */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(feed_msg(bad[i], strlen(bad[i]), &e), ERR_BAD_REQUEST);
	static const char nul[] = "{\"id\":1,\"type\":\"a\"}\0"; /* an unannounced NUL */
	assert_int_equal(feed_msg(nul, sizeof nul, &e), ERR_BAD_REQUEST);
}

static void oversized_payload_is_not_encoded(void **state)
{
	struct buf b;
	struct err e;
	buf_init(&b);
	char *big = calloc(1, FRAME_MAX);
	assert_int_equal(frame_encode_payload(&b, 1, "blob_chunk", NULL, big, FRAME_MAX, &e),
			 ERR_TOO_LARGE);
	assert_int_equal(b.len, 0);
	free(big);
	buf_fini(&b);
}

static void partial_frame_waits_for_more(void **state)
{
	struct err e;
	static const char part[] = "\0\0\0\x15{\"id\":1,\"ty";
	assert_int_equal(feed_raw(part, sizeof part - 1, &e), 0);
}

static void oversized_message_is_not_encoded(void **state)
{
	struct buf b;
	struct err e;
	buf_init(&b);
	char *big = malloc(FRAME_MAX);
	memset(big, 'a', FRAME_MAX - 1);
	big[FRAME_MAX - 1] = '\0';
	json_t *body = json_pack("{s:s}", "data", big);
	assert_int_equal(frame_encode(&b, 1, "log", body, &e), ERR_TOO_LARGE);
	assert_int_equal(b.len, 0);
	json_decref(body);
	free(big);
	buf_fini(&b);
}

static void broken_reader_stays_broken(void **state)
{
	struct frame_reader r;
	struct frame_msg m;
	struct err e;
	static const unsigned char empty[] = {0, 0, 0, 0};
	struct buf good;
	buf_init(&good);
	frame_encode(&good, 1, "ok", NULL, &e);
	frame_reader_init(&r);
	frame_reader_feed(&r, empty, sizeof empty);
	frame_reader_feed(&r, good.data, good.len);
	assert_true(frame_next(&r, &m, &e) < 0);
	assert_true(frame_next(&r, &m, &e) < 0);
	assert_int_equal(r.broken, 1);
	frame_reader_fini(&r);
	buf_fini(&good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_byte_by_byte),
		cmocka_unit_test(malformed_frames_are_refused),
		cmocka_unit_test(payload_round_trip_byte_by_byte),
		cmocka_unit_test(payload_must_match_its_announced_size),
		cmocka_unit_test(oversized_payload_is_not_encoded),
		cmocka_unit_test(partial_frame_waits_for_more),
		cmocka_unit_test(oversized_message_is_not_encoded),
		cmocka_unit_test(broken_reader_stays_broken),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
