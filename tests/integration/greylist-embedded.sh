#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: greylisting with the embedded store through a real Postfix, with greylist_delay
# shortened to 2 s. The first attempt of a (client network, sender, recipient) triplet gets
# exactly 451 4.7.1 at RCPT with a retry time in seconds, and nothing is delivered; an
# immediate retry is refused again; a retry after the delay is accepted and delivered. After
# that delivery the client network (127.0.0.0/24) is auto-allowed: a new sender and
# recipient from another address of it (127.0.0.2) pass at once, while another network
# (127.0.1.0/24) is still greylisted. milter-warden stopped and started again keeps both:
# the auto-allowed network passes at once with yet another triplet, and the other network's
# pending triplet, retried after the delay, passes (its first attempt was remembered).
. "$(dirname "$0")/lib.sh"
it_init
store=$(state_lmdb)
rules_write "$T/grey.rules" <<'RULES'
rule grey at rcpt when greylisted
    then tempfail 451 4.7.1 "Greylisted, try again in %{retry}"
RULES
rules_check "$T/grey.rules" "the greylisting rule loads"
mw_config rules="$T/grey.rules" state_store="lmdb:$store" greylist_delay=2
it_start

grey_re='^<\*\* 451 4\.7\.1 Greylisted, try again in [12] seconds?$'
tok1=$(unique_token)
first=$(now_ms)
tx=$(send --to alice@example.com --from bob@sender.example --h-Subject "greylisted" --body "$tok1")
assert_match "$tx" "$grey_re" "first attempt: RCPT gets 451 4.7.1 with the retry time in seconds"
assert_no_match "$tx" 'queued as' "first attempt not queued"
tx=$(send --to alice@example.com --from bob@sender.example --h-Subject "greylisted" --body "$tok1")
assert_match "$tx" "$grey_re" "an immediate retry is refused as well"
assert_eq "$(sink_count)" 0 "nothing delivered while greylisted"
# Retry once the 2 s delay has surely passed since the first attempt.
while (($(now_ms) - first < 2300)); do sleep 0.1; done
tx=$(send --to alice@example.com --from bob@sender.example --h-Subject "greylisted" --body "$tok1")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "a retry after the delay is accepted"
wait_for_delivery 1
sink_one "$tok1" "the retried message was delivered"

tok2=$(unique_token)
tx=$(send --local-interface 127.0.0.2 --to carol@example.com --from dave@other.example \
	--h-Subject "same network, new triplet" --body "$tok2")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' \
	"after a delivery the client network is auto-allowed: a new triplet from 127.0.0.2 passes at once"
tok3=$(unique_token)
tx=$(send --local-interface 127.0.1.1 --to erin@example.com --from frank@third.example \
	--h-Subject "another network" --body "$tok3")
assert_match "$tx" "$grey_re" "another client network (127.0.1.0/24) is still greylisted"
other_first=$(now_ms)
wait_for_delivery 2
sink_one "$tok2" "the auto-allowed message was delivered"

mw_restart
tok4=$(unique_token)
tx=$(send --local-interface 127.0.0.3 --to grace@example.com --from heidi@fourth.example \
	--h-Subject "after the restart" --body "$tok4")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' \
	"after a restart the auto-allow is kept: a new triplet from 127.0.0.3 passes at once"
while (($(now_ms) - other_first < 2300)); do sleep 0.1; done
tx=$(send --local-interface 127.0.1.1 --to erin@example.com --from frank@third.example \
	--h-Subject "another network" --body "$tok3")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' \
	"the other network's triplet, first seen before the restart, passes after the delay"
wait_for_delivery 4
sink_one "$tok3" "the other network's retried message was delivered"
sink_one "$tok4" "the message after the restart was delivered"
assert_eq "$(sink_count)" 4 "the sink holds exactly the four accepted messages"
assert_log "action=tempfail code=451 dsn=4\.7\.1 rule=grey reason=\"Greylisted, try again in [0-9]" \
	"the greylisting refusals are logged with rule=grey"
assert_no_log 'state store failed' "no state store failure was logged"
mw_stop
