#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: the reply code, enhanced status code and text written in a rule are what the SMTP
# client gets, at MAIL and at end of message. "tempfail 451 4.7.28 "slow down %{from}"" at mail
# answers MAIL FROM with exactly "451 4.7.28 slow down <sender>"; "reject 550 5.7.0" at eom on a
# body regex answers DATA with exactly its text, where "%%" became one literal "%". Neither
# message is delivered or left in the queue; an ordinary message sent afterwards on the same
# connection is (so the rules refuse only what they were written for). Each refusal is logged
# with its code, dsn and rule, and Postfix logs both milter-rejects.
. "$(dirname "$0")/lib.sh"
it_init
rules_write "$T/replies.rules" <<'RULES'
rule slow-sender at mail when from.local == "slow"
    then tempfail 451 4.7.28 "slow down %{from}"
rule forbidden-phrase at eom when body =~ /^Forbidden phrase: [0-9]+ widgets\r?$/m
    then reject 550 5.7.0 "Refused: 100%% of this message is forbidden (%%{from} stays as written)"
RULES
rules_check "$T/replies.rules" "the reply rules load"
mw_config rules="$T/replies.rules"
it_start

tok_bad=$(unique_token)
mkmsg "$T/msg/bad" "body with a forbidden phrase" "$tok_bad" bad@mw-test.example rcpt@example.com
printf 'Forbidden phrase: 12 widgets\nMore text.\n' >>"$T/msg/bad"
tok_ok=$(unique_token)
mkmsg "$T/msg/ok" "ordinary message" "$tok_ok" ok@mw-test.example rcpt@example.com

session_open
session "MAIL slow@mw-test.example"
assert_eq "$SESSION_REPLY" "451 4.7.28 slow down slow@mw-test.example" \
	"MAIL FROM gets exactly the rule's tempfail: 451 4.7.28 and the text with %{from} interpolated"
session "MAIL bad@mw-test.example"
assert_match "$SESSION_REPLY" '^250 ' "another sender on the same connection may start a message"
session "RCPT rcpt@example.com"
assert_match "$SESSION_REPLY" '^250 ' "its recipient is accepted"
session "DATA $T/msg/bad"
assert_eq "$SESSION_REPLY" "550 5.7.0 Refused: 100% of this message is forbidden (%{from} stays as written)" \
	"DATA gets exactly the rule's reject: 550 5.7.0, each %% written as one literal %"
session "MAIL ok@mw-test.example"
session "RCPT rcpt@example.com"
session "DATA $T/msg/ok"
assert_match "$SESSION_REPLY" '^250 2\.0\.0 Ok: queued as ' "an ordinary message on the same connection is accepted"
qid_ok=$(queue_id "$SESSION_REPLY")
session_close

wait_for_delivery 1
sink_one "$tok_ok" "the ordinary message was delivered"
assert_eq "$(sink_find "$tok_bad" | wc -l)" 0 "nothing of the rejected message was delivered"
assert_eq "$(grep -l -F 'slow@mw-test.example' "$T"/sink/msg.* 2>/dev/null | wc -l)" 0 \
	"nothing from the tempfailed sender was delivered"
assert_eq "$(sink_count)" 1 "the sink holds the ordinary message only"

assert_log "from=<slow@mw-test\.example> (.* )?action=tempfail code=451 dsn=4\.7\.28 rule=slow-sender reason=\"slow down slow@mw-test\.example\"" \
	"the tempfail is logged with code=451 dsn=4.7.28 rule=slow-sender"
assert_log "from=<bad@mw-test\.example> (.* )?action=reject code=550 dsn=5\.7\.0 rule=forbidden-phrase " \
	"the reject is logged with code=550 dsn=5.7.0 rule=forbidden-phrase"
assert_log ": $qid_ok: .*from=<ok@mw-test\.example> (.* )?action=accept" "accept line for the ordinary message"
maillog=$(cat "$T/log/maillog")
assert_match "$maillog" 'milter-reject: MAIL from .*451 4\.7\.28 slow down slow@mw-test\.example' \
	"Postfix logged the milter's 451 at MAIL"
assert_match "$maillog" 'milter-reject: END-OF-MESSAGE from .*: 5\.7\.0 Refused: 100% of this message is forbidden' \
	"Postfix logged the milter's 550 at end of message"
assert_queue_empty "nothing left in the Postfix queue"
# The log's reason= is the reply text (milter-warden(8)): the text the client got, one % each.
assert_log "from=<bad@mw-test\.example> (.* )?rule=forbidden-phrase reason=\"Refused: 100% of this message is forbidden \(%\{from\} stays as written\)\"" \
	"the reject's reason= is the text the client got (a literal %, not %%)"
mw_stop
