#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: two milter-warden instances sharing one real redis-server (started by the test on
# loopback) enforce one limit together. Daemon A stands behind the private Postfix's main
# listener, daemon B (its own configuration, socket and process) behind a second listener;
# the rule is "ratelimit messages by client.ip max 4 per 1h" at MAIL in both. Two messages
# through A and two through B are delivered, each logged by the daemon that saw it; then the
# 5th, through A, and the 6th, through B, both get 451 4.7.1 with a retry time: neither
# daemon alone has seen more than two. Another client address still passes through B, the
# counters are in Redis (keys with an expiry), and neither daemon logged a store failure.
. "$(dirname "$0")/lib.sh"
it_init
redis_start
rules_write "$T/limits.rules" <<'RULES'
rule rate at mail when ratelimit messages by client.ip max 4 per 1h
    then tempfail 451 4.7.1 "Too many messages, try again in %{retry}"
RULES
rules_check "$T/limits.rules" "the rate-limit rule loads"
mw_config rules="$T/limits.rules" state_store="redis:127.0.0.1:$REDIS_PORT"
mwb_config rules="$T/limits.rules" state_store="redis:127.0.0.1:$REDIS_PORT"
pf_listener PORT_B "smtpd_milters=unix:$T/run/mwb.sock"
sink_start
mw_start
mwb_start
pf_start
pf_wait_listening "$PORT_B"

via() { # via A|B N: message N through daemon A or B; prints the transcript
	local port=$SMTPD_PORT
	[[ $1 == B ]] && port=$PORT_B
	send_port "$port" --to "rcpt$2@example.com" --h-Subject "message $2 via $1" --body "${tok[$2]}"
}
for i in 1 2 3 4 5 6 7; do tok[i]=$(unique_token); done
for pair in A:1 A:2 B:3 B:4; do
	d=${pair%:*} i=${pair#*:}
	tx=$(via "$d" "$i")
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "message $i of 4, through daemon $d, accepted"
	qid[i]=$(queue_id "$tx")
done
retry_re='^<\*\* 451 4\.7\.1 Too many messages, try again in (1[0-9]|[0-9]) minutes?( [0-9]+ seconds?)?$'
tx=$(via A 5)
assert_match "$tx" "$retry_re" "the 5th message, through A, gets 451 4.7.1 (A saw only two)"
tx=$(via B 6)
assert_match "$tx" "$retry_re" "the 6th message, through B, gets 451 4.7.1 (B saw only two)"
tx=$(send_port "$PORT_B" --local-interface 127.0.0.2 --to rcpt7@example.com \
	--h-Subject "another client via B" --body "${tok[7]}")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "another client address passes through B"

wait_for_delivery 5
for i in 1 2 3 4 7; do sink_one "${tok[i]}" "message $i delivered"; done
for i in 5 6; do
	assert_eq "$(sink_find "${tok[i]}" | wc -l)" 0 "nothing of refused message $i was delivered"
done
for i in 1 2; do
	assert_log "milter-warden\[$MW_PID\]: [A-Za-z]+: ${qid[i]}: .*action=accept" "daemon A logged message $i"
done
for i in 3 4; do
	assert_log "milter-warden\[$MWB_PID\]: [A-Za-z]+: ${qid[i]}: .*action=accept" "daemon B logged message $i"
done
assert_log "milter-warden\[$MW_PID\]: .*action=tempfail code=451 dsn=4\.7\.1 rule=rate " "daemon A refused by the rule"
assert_log "milter-warden\[$MWB_PID\]: .*action=tempfail code=451 dsn=4\.7\.1 rule=rate " "daemon B refused by the rule"
rkeys=$(redis_cli --scan)
[[ -n $rkeys ]] || fail "no key in Redis after the limited messages"
note "ok: Redis holds $(grep -c . <<<"$rkeys") key(s)"
ttl=$(redis_cli pttl "$(head -n1 <<<"$rkeys")")
((ttl > 0)) || fail "Redis key $(head -n1 <<<"$rkeys") has no expiry (pttl $ttl)"
note "ok: the counters expire by themselves (pttl ${ttl} ms)"
assert_no_log 'state store failed' "no state store failure was logged"
mwb_stop
mw_stop
