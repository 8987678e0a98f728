#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves the README's limit on names: a recipient, a sender and a HELO name longer than 1024
# bytes are refused permanently (553 5.1.3, 553 5.1.7, 501 5.5.2), not tempfailed as an
# internal error; a normal recipient in the same transaction still gets its message.
. "$(dirname "$0")/lib.sh"
it_init
it_start

long=$(head -c 1100 /dev/zero | tr '\0' 'l')
tok=$(unique_token)
mkmsg "$T/msg/m1" "one recipient too long" "$tok" sender@mw-test.example ok@example.com

session_open
session "MAIL sender@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "MAIL FROM accepted"
session "RCPT $long@example.com"
assert_match "$SESSION_REPLY" '^553 5\.1\.3 ' "a 1112-byte recipient gets 553 5.1.3"
session "RCPT ok@example.com"
assert_match "$SESSION_REPLY" '^250 ' "a normal recipient in the same transaction is accepted"
session "DATA $T/msg/m1"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the message is accepted for the normal recipient"
qid=$(queue_id "$SESSION_REPLY")
session "MAIL $long@mw-test.example"
assert_match "$SESSION_REPLY" '^553 5\.1\.7 ' "a 1116-byte sender gets 553 5.1.7"
session_close

tx=$(send --helo "$long.example" --to x@example.com)
assert_match "$tx" '^<\*\* 501 5\.5\.2 ' "a 1108-byte HELO name gets 501 5.5.2"

wait_for_delivery 1
sink_one "$tok" "the message reached the normal recipient"
assert_eq "$(sink_rcpts "$SINK_FILE")" "ok@example.com" "and only the normal recipient"
assert_accept_logged "$qid" "accept line for the message"
assert_no_log 'milter-warden\[[0-9]+\]: error:' "no internal error logged"
assert_log 'action=reject code=553 dsn=5\.1\.3' "the recipient refusal is logged"
assert_log 'action=reject code=553 dsn=5\.1\.7' "the sender refusal is logged"
assert_log 'action=reject code=501 dsn=5\.5\.2' "the HELO refusal is logged"
assert_no_match "$(grep -E 'milter-warden\[' "$MW_LOG" | awk '{ if (length($0) > 4096) print "long line" }')" 'long line' \
	"log lines stay short (the long names are not logged whole)"
mw_stop
