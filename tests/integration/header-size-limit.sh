#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: max_header_bytes is enforced through Postfix. With max_header_bytes = 4k, a message
# whose header section is about 8 KiB is refused at end of data with
# "552 5.3.4 Message header size exceeds limit" and nothing of it is delivered or queued; an
# ordinary message on the same connection right after it passes (the limit is per message).
. "$(dirname "$0")/lib.sh"
it_init
mw_config max_header_bytes=4k
it_start

big=$(unique_token)
mkmsg "$T/msg/big" "header section over the limit" "$big" big@mw-test.example big@example.com
filler=$(head -c 600 /dev/zero | tr '\0' 'x')
# Insert 14 headers of about 620 bytes each before the blank line that ends the headers.
hdrs=$(for i in $(seq 1 14); do printf 'X-Filler-%02d: %s\\n' "$i" "$filler"; done)
sed -i "0,/^\$/s//${hdrs}/" "$T/msg/big"
n=$(sed '/^$/q' "$T/msg/big" | wc -c)
((n > 8000)) || fail "harness: the big message has only $n header bytes"

small=$(unique_token)
mkmsg "$T/msg/small" "ordinary message after a refused one" "$small" small@mw-test.example small@example.com

session_open
session "MAIL big@mw-test.example"
session "RCPT big@example.com"
assert_match "$SESSION_REPLY" '^250 ' "recipient of the big message accepted"
session "DATA $T/msg/big"
assert_match "$SESSION_REPLY" '^552 5\.3\.4 Message header size exceeds limit' "big header section refused with 552 5.3.4"
session "MAIL small@mw-test.example"
session "RCPT small@example.com"
session "DATA $T/msg/small"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the next message on the connection passes"
qid=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sleep 0.5
assert_eq "$(sink_find "$big" | wc -l)" 0 "nothing of the refused message was delivered"
sink_one "$small" "the ordinary message was delivered"
assert_log "from=<big@mw-test\.example>.* code=552 dsn=5\.3\.4" "the refusal is logged with code=552 dsn=5.3.4"
assert_accept_logged "$qid" "accept line for the ordinary message"
assert_match "$(cat "$T/log/maillog")" 'milter-reject: END-OF-MESSAGE from .*5\.3\.4 Message header size exceeds limit; from=<big@mw-test\.example>' \
	"Postfix logged the milter's refusal"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
