#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: "quarantine "REASON"" at eom makes Postfix put the message on hold. The client gets
# 250 (the message is accepted), but it is not delivered: postqueue -p lists it with "!" (held),
# postcat shows it is the message sent, Postfix logs the milter-hold (Postfix 3.7 logs its own
# text, not the reason), and milter-warden logs the accept with quarantine="REASON" and the rule in
# rules=. An ordinary message sent after it on the same connection is delivered (the hold is
# per message). The held message is deleted at the end (postsuper -d ALL hold) and the queue
# is left empty.
. "$(dirname "$0")/lib.sh"
it_init
rules_write "$T/hold.rules" <<'RULES'
rule invoice-hold at eom when header "Subject" =~ /invoice/i
    then quarantine "held by %{rule} for %{from}"
RULES
rules_check "$T/hold.rules" "the quarantine rules load"
mw_config rules="$T/hold.rules"
it_start

tok=$(unique_token)
mkmsg "$T/msg/held" "Your INVOICE is attached" "$tok" billing@mw-test.example rcpt@example.com
tok_ok=$(unique_token)
mkmsg "$T/msg/ok" "lunch on friday" "$tok_ok" friend@mw-test.example rcpt@example.com
session_open
session "MAIL billing@mw-test.example"
session "RCPT rcpt@example.com"
assert_match "$SESSION_REPLY" '^250 ' "recipient accepted"
session "DATA $T/msg/held"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the client sees the message accepted"
qid=$(queue_id "$SESSION_REPLY")
session "MAIL friend@mw-test.example"
session "RCPT rcpt@example.com"
session "DATA $T/msg/ok"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "the ordinary message is accepted"
qid_ok=$(queue_id "$SESSION_REPLY")
session_close

# The ordinary message, sent after the held one, goes through: by then the held one would
# have been delivered too, were it not on hold.
wait_for_sink "$tok_ok" 20
note "ok: the ordinary message was delivered"
q=$(postqueue -c "$PF_DIR" -p 2>&1 || true)
assert_match "$q" "^$qid! " "postqueue -p lists $qid as held ('!')"
assert_match "$q" '^ +rcpt@example\.com$' "the held message is still for rcpt@example.com"
assert_eq "$(grep -cE '^[0-9A-Za-z]+[*!]? ' <<<"$q")" 1 "the held message is the only one in the queue"
held=$(postcat -c "$PF_DIR" -q "$qid" 2>&1) || fail "postcat -q $qid failed: $held"
assert_match "$held" "^Message-ID: <$tok@mw-test\.example>\$" "postcat shows the message sent is the one held"
assert_eq "$(sink_find "$tok" | wc -l)" 0 "the held message was not delivered"
sink_one "$tok_ok" "only the ordinary message reached the sink"
assert_eq "$(sink_count)" 1 "the sink holds one message"

maillog=$(cat "$T/log/maillog")
# Postfix logs its own text here, not the milter's reason.
assert_match "$maillog" "$qid: milter-hold: END-OF-MESSAGE from .*: milter triggers HOLD action; from=<billing@mw-test\.example> to=<rcpt@example\.com>" \
	"Postfix logged the milter-hold of $qid"
assert_no_match "$maillog" "$qid: to=<" "Postfix made no delivery attempt for $qid"
assert_log ": $qid: .*from=<billing@mw-test\.example> nrcpt=1 (.* )?quarantine=\"held by invoice-hold for billing@mw-test\.example\" (.* )?rules=invoice-hold (.* )?action=accept" \
	"milter-warden logged the accept of $qid with the quarantine reason and rules=invoice-hold"
assert_log ": $qid_ok: .*from=<friend@mw-test\.example> nrcpt=1 (.* )?action=accept" "accept line for the ordinary message"
assert_no_match "$(grep -E ": $qid_ok: " "$MW_LOG")" 'invoice-hold' "the ordinary message matched no rule"

# Clean up: nothing is left in the queue.
postsuper -c "$PF_DIR" -d ALL hold >>"$T/log/postfix-start.log" 2>&1 || fail "postsuper -d ALL hold failed"
assert_queue_empty "the queue is empty after postsuper -d ALL hold"
mw_stop
