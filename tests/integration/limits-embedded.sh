#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: a rate limit with the embedded store (LMDB, the default kind) holds through a real
# Postfix and survives a restart of milter-warden. With "ratelimit messages by client.ip max 3
# per 1h" at MAIL, messages 1..3 from 127.0.0.1 are delivered; the 4th gets exactly 451 4.7.1
# with a text that says when to retry (%{retry}: minutes and seconds, about 20 minutes: GCRA
# frees one message every 1h/3) and nothing of it is delivered or queued; another client
# address (127.0.0.2) has its own count and passes. After milter-warden is stopped and
# started again the count is still there: the next message from 127.0.0.1 is refused at once,
# and the decision lines name the rule. The store file lives in a root-owned directory and
# belongs to the daemon's user (it chowns the file before dropping privileges).
. "$(dirname "$0")/lib.sh"
it_init
store=$(state_lmdb)
rules_write "$T/limits.rules" <<'RULES'
rule rate at mail when ratelimit messages by client.ip max 3 per 1h
    then tempfail 451 4.7.1 "Too many messages, try again in %{retry}"
RULES
rules_check "$T/limits.rules" "the rate-limit rule loads"
mw_config rules="$T/limits.rules" state_store="lmdb:$store"
it_start
assert_eq "$(stat -c %U "$store")" "$MW_USER" "the store file belongs to $MW_USER"

retry_re='451 4\.7\.1 Too many messages, try again in (1[0-9]|20) minutes?( [0-9]+ seconds?)?$'
for i in 1 2 3; do
	tok[i]=$(unique_token)
	tx=$(send --to "rcpt$i@example.com" --h-Subject "limited message $i" --body "${tok[i]}")
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "message $i of 3 accepted"
done
tok4=$(unique_token)
tx=$(send --to rcpt4@example.com --h-Subject "message over the limit" --body "$tok4")
assert_match "$tx" "^<\*\* $retry_re" \
	"the 4th message within the hour gets 451 4.7.1 and a retry time of about 20 minutes"
assert_no_match "$tx" 'queued as' "the 4th message was not queued"
tok5=$(unique_token)
tx=$(send --local-interface 127.0.0.2 --to rcpt5@example.com --h-Subject "another client" --body "$tok5")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "another client address (127.0.0.2) has its own count"
wait_for_delivery 4
for i in 1 2 3; do sink_one "${tok[i]}" "message $i delivered"; done
sink_one "$tok5" "the other client's message delivered"
assert_eq "$(sink_find "$tok4" | wc -l)" 0 "nothing of the refused message was delivered"
assert_log "action=tempfail code=451 dsn=4\.7\.1 rule=rate reason=\"Too many messages, try again in [0-9]" \
	"the refusal is logged with rule=rate and the retry time"

mw_restart
assert_eq "$(stat -c %U "$store")" "$MW_USER" "the store file still belongs to $MW_USER"
mark=$(log_mark "$MW_LOG")
tok6=$(unique_token)
tx=$(send --to rcpt6@example.com --h-Subject "after the restart" --body "$tok6")
assert_match "$tx" "^<\*\* $retry_re" "after a restart the count survived: the next message is still refused"
assert_match "$(log_since "$MW_LOG" "$mark")" "milter-warden\[$MW_PID\]: .*action=tempfail code=451 dsn=4\.7\.1 rule=rate " \
	"the restarted daemon (pid $MW_PID) refused it by the rule"
tok7=$(unique_token)
tx=$(send --local-interface 127.0.0.2 --to rcpt7@example.com --h-Subject "other client again" --body "$tok7")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "127.0.0.2 still passes (its 2nd message of 3)"
wait_for_delivery 5
sleep 0.5
assert_eq "$(sink_find "$tok6" | wc -l)" 0 "nothing of the message refused after the restart was delivered"
assert_eq "$(sink_count)" 5 "the sink holds exactly the five accepted messages"
assert_no_log 'state store failed' "no state store failure was logged"
mw_stop
