#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: mail submitted locally with sendmail(1) (postdrop -> pickup -> cleanup, Postfix's
# non_smtpd_milters path) is signed by milter-warden and never refused there, even where the
# same message over SMTP would be:
#   (a) From: alice@example.org (RSA and Ed25519 keys) to a remote recipient, with
#       loopback NOT trusted (trusted_networks = 192.0.2.0/24): over SMTP on the MX listener
#       the shipped rules refuse it (5xx 5.7.1: our domain from outside, or relaying;
#       checked first); through sendmail
#       it is delivered, signed with both keys, the signatures on top above Postfix's
#       "Received: by ... (Postfix, from userid 0)" and verified by python3-dkim and OpenDKIM;
#       the log line says dkim=signed;
#   (b) a body with lines of dots and trailing white space, sent with sendmail -i: signed
#       and verified;
#   (c) From: a domain with no key: delivered unsigned (dkim=unsigned in the log), not
#       bounced, not deferred;
# and Postfix logged no milter reject or tempfail for any of them.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
dkim_keygen rsa rsa
dkim_keygen ed ed25519
dkim_publish rsa2026 example.org rsa
dkim_publish ed2026 example.org ed
dns_start
pf_main "non_smtpd_milters=unix:$T/run/mw.sock"
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org \
	dkim_keys="example.org:rsa2026:$(dkim_key rsa), example.org:ed2026:$(dkim_key ed)" \
	dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=2 authserv_id=mx.mw-test.example
it_start
sigs=("d=example.org s=rsa2026 a=rsa-sha256" "d=example.org s=ed2026 a=ed25519-sha256")
remote=friend@remote.example

# local_send FILE FROM: sendmail -i as root into the private Postfix; the queue id from its
# maillog "uid=0 from=<FROM>" line goes into QID.
local_send() {
	local mark rc=0 i
	mark=$(log_mark "$T/log/maillog")
	timeout 20 sendmail -C "$PF_DIR" -i -f "$2" -- "$remote" <"$1" >"$T/out/sendmail.log" 2>&1 || rc=$?
	[[ $rc == 0 ]] || {
		sed 's/^/  | /' "$T/out/sendmail.log"
		fail "sendmail exited with status $rc"
	}
	QID=
	for ((i = 0; i < 100; i++)); do
		QID=$(log_since "$T/log/maillog" "$mark" |
			sed -n 's/.*postfix\/pickup\[[0-9]*\]: \([0-9A-Za-z]*\): uid=0 from=<.*/\1/p' | head -n1)
		[[ -n $QID ]] && break
		sleep 0.1
	done
	[[ -n $QID ]] || fail "pickup did not take the message within 10s"
	note "sendmail: queued as $QID"
}

# sent_not_bounced WHAT: Postfix relayed $QID to the sink (status=sent), not bounced (a
# bounce would carry the token to the sink too).
sent_not_bounced() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -Eq " $QID: to=<.*status=(sent|bounced|deferred)" "$T/log/maillog" && break
		sleep 0.1
	done
	assert_no_match "$(grep -F " $QID: " "$T/log/maillog")" 'milter-reject|status=(bounced|deferred)' \
		"$1: Postfix did not bounce or defer it (no milter reject)"
	assert_match "$(grep -F " $QID: " "$T/log/maillog")" "to=<$(ere_quote "$remote")>.* status=sent " \
		"$1: Postfix relayed it to $remote"
}

# --- (a) the SMTP path refuses it, the local path signs it
TOK=$(unique_token)
mkmsg "$T/msg/a.eml" "local submission" "$TOK" alice@example.org "$remote"
tx=$(send --from alice@example.org --to "$remote" --data "@$T/msg/a.eml")
assert_match "$tx" '^<\*\* 5[0-9][0-9] 5\.7\.1 ' "(a) over SMTP, the same message is refused"
# From here on only the local path: no refusal of any kind.
after_smtp=$(log_mark "$T/log/maillog")
local_send "$T/msg/a.eml" alice@example.org
sent_not_bounced "(a)"
wait_for_delivery 1
dkim_capture "$TOK" "$T/msg/got.a.eml" "(a) delivered"
assert_match "$(dkim_field "$T/msg/got.a.eml" 2)" '^Received: by mx\.mw-test\.example \(Postfix, from userid 0\)' \
	"(a) it went through pickup (Received: ... from userid 0)"
dkim_assert_signed "$T/msg/got.a.eml" "(a) sendmail" "${sigs[@]}"
assert_match "$(dkim_log_line "$QID")" ' dkim=signed ' "(a) the log line says dkim=signed"

# --- (b) dots and trailing white space through sendmail -i
TOK=$(unique_token)
{
	printf 'From: alice@example.org\nTo: %s\nSubject: dots\nDate: %s\n' "$remote" "$(date -R)"
	printf 'Message-ID: <%s@example.org>\nX-Token: %s\n\n' "$TOK" "$TOK"
	printf '.\n..\n.x\ntrailing  \t\nend\n\n\n'
} >"$T/msg/b.eml"
local_send "$T/msg/b.eml" alice@example.org
sent_not_bounced "(b)"
wait_for_delivery 2
dkim_capture "$TOK" "$T/msg/got.b.eml" "(b) delivered"
"$PY" -c 'import sys; sys.exit(b"\r\n\r\n.\r\n..\r\n.x\r\ntrailing  \t\r\nend\r\n" not in open(sys.argv[1], "rb").read())' \
	"$T/msg/got.b.eml" || fail "(b) the dot lines or the trailing white space did not survive"
note "ok: (b) dot lines and trailing white space arrived as written"
dkim_assert_signed "$T/msg/got.b.eml" "(b) sendmail -i, dots" "${sigs[@]}"

# --- (c) no key for the From: domain: unsigned, still delivered
TOK=$(unique_token)
mkmsg "$T/msg/c.eml" "no key" "$TOK" carol@nokey.example "$remote"
local_send "$T/msg/c.eml" carol@nokey.example
sent_not_bounced "(c)"
wait_for_delivery 3
dkim_capture "$TOK" "$T/msg/got.c.eml" "(c) delivered"
assert_eq "$(dkim_sigs "$T/msg/got.c.eml")" "" "(c) unsigned"
assert_match "$(dkim_log_line "$QID")" ' dkim=unsigned ' "(c) the log line says dkim=unsigned"

assert_queue_empty "nothing deferred"
assert_no_match "$(log_since "$T/log/maillog" "$after_smtp")" 'milter-reject|milter-hold|milter-discard|status=(deferred|bounced)' \
	"local path: Postfix logged no milter reject and nothing deferred or bounced"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"
mw_stop
