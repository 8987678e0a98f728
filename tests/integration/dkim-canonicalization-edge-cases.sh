#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: milter-warden's relaxed/relaxed signatures (RSA-2048 and Ed25519 on every message)
# verify with python3-dkim and OpenDKIM on messages whose canonical form differs from what
# is on the wire, each submitted by an authenticated user and captured as Postfix relayed it:
#   trailing-whitespace      spaces and tabs at the end of header and body lines, a
#                            whitespace-only body line
#   inner-whitespace         runs of spaces and tabs inside header values and body lines,
#                            mixed-case header names
#   empty-lines-at-end       five empty lines after the last text line
#   empty-body               nothing after the header section
#   long-folded-headers      Subject folded over three lines, References with 20 message ids
#                            one a line, a To: list of 12 folded addresses, a 700-character
#                            header on one line, a 900-character body line
#   folded-after-colon       Subject: and another field folded right after the colon
#   8bit                     UTF-8 and Latin-1 bytes in the body, UTF-8 in the Subject
#   dot-lines                lines ".", "..", "...", ".x" in the body (the client dot-stuffs,
#                            Postfix unstuffs before the milter, stuffs again towards the
#                            sink, which unstuffs); not "." as the very last line: swaks
#                            takes that for its own end-of-data mark
# For each, the captured message still shows the edge case (the test would prove nothing if
# a hop had normalised it away), carries the two signatures on top and both verify.
. "$(dirname "$0")/lib.sh"
it_init
pf_open_relay
sasl_setup EXAMPLE.ORG alice:alice-secret-1
pf_listener SUBMIT_PORT milter_macro_daemon_name=ORIGINATING smtpd_sasl_auth_enable=yes
dkim_keygen rsa rsa
dkim_keygen ed ed25519
dkim_publish rsa2026 example.org rsa
dkim_publish ed2026 example.org ed
dns_start
mw_file_write "$T/sender_logins" <<'MAP'
alice@EXAMPLE.ORG: alice@example.org
MAP
mw_config trusted_networks=192.0.2.0/24 local_domains=example.org \
	sender_login_map="$T/sender_logins" \
	dkim_keys="example.org:rsa2026:$(dkim_key rsa), example.org:ed2026:$(dkim_key ed)" \
	dns_servers="127.0.0.1:$DNS_PORT" dns_timeout=2 authserv_id=mx.mw-test.example
it_start
pf_wait_listening "$SUBMIT_PORT"

sigs=("d=example.org s=rsa2026 a=rsa-sha256" "d=example.org s=ed2026 a=ed25519-sha256")
delivered=0

# top TOKEN: the usual first header fields (From: alice, To:, Date:, Message-ID:).
top() {
	printf 'From: Alice <alice@example.org>\nTo: <friend@remote.example>\n'
	printf 'Date: %s\nMessage-ID: <%s@example.org>\n' "$(date -R)" "$1"
}

# edge NAME: write the message of case NAME to $T/msg/NAME.eml (token $TOK in a header).
edge() {
	local f=$T/msg/$1.eml i
	{
		top "$TOK"
		case $1 in
		trailing-whitespace)
			printf 'Subject: trailing white space  \t \nX-Token: %s\n\n' "$TOK"
			printf 'text with three spaces   \nand a tab\t\n   \n  both ends  \nend\n'
			;;
		inner-whitespace)
			printf 'SUBJECT: runs  of \t  white   space\nx-ToKeN:   %s\n' "$TOK"
			printf 'X-MiXeD-CaSe:\t a \t b  \n\n'
			printf 'a  b\t\tc \t d\n  leading spaces\n\tleading tab\nend\n'
			;;
		empty-lines-at-end)
			printf 'Subject: empty lines at the end\nX-Token: %s\n\n' "$TOK"
			printf 'last text line\n\n\n\n\n\n'
			;;
		empty-body)
			printf 'Subject: empty body\nX-Token: %s\n\n' "$TOK"
			;;
		long-folded-headers)
			printf 'Subject: a subject long enough to be folded\n over three lines\n\tby the sender\n'
			printf 'X-Token: %s\nReferences:' "$TOK"
			for ((i = 1; i <= 20; i++)); do printf '\n <ref-%02d.%s@example.org>' "$i" "$TOK"; done
			printf '\nCc: '
			for ((i = 1; i <= 12; i++)); do
				printf 'Person %02d <person%02d@remote.example>' "$i" "$i"
				((i < 12)) && printf ',\n   '
			done
			printf '\nX-Long: %s\n\n' "$(printf 'long%.0s' {1..175})"
			printf 'short line\n%s\nend\n' "$(printf 'wide%.0s' {1..225})"
			;;
		folded-after-colon)
			printf 'Subject:\n\tfolded right after the colon\nX-Token:\n %s\n' "$TOK"
			printf 'X-Folded:\n  two\n   continuation lines\n\nbody\n'
			;;
		8bit)
			printf 'Subject: 8-bit K\xc3\xa4se \xe2\x82\xac\nX-Token: %s\n' "$TOK"
			printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n'
			printf 'Content-Transfer-Encoding: 8bit\n\n'
			printf 'UTF-8: gr\xc3\xbc\xc3\x9fe, \xe2\x82\xac, \xf0\x9f\x93\xa8\nLatin-1: caf\xe9\nend\n'
			;;
		dot-lines)
			printf 'Subject: lines of dots\nX-Token: %s\n\n' "$TOK"
			printf '.\n..\n...\n.x leading dot\n . \n.\nend\n'
			;;
		esac
	} >"$f"
}

# has FILE BYTES WHAT: the captured message contains BYTES (backslash escapes as printf's
# %b reads them: \r, \n, \t, \xHH; the captured message has CRLF line endings).
has() {
	printf '%b' "$2" >"$T/msg/want"
	"$PY" -c 'import sys; sys.exit(open(sys.argv[2], "rb").read() not in open(sys.argv[1], "rb").read())' \
		"$1" "$T/msg/want" || fail "$3: the captured message lost it"
	note "ok: $3"
}

for name in trailing-whitespace inner-whitespace empty-lines-at-end empty-body \
	long-folded-headers folded-after-colon 8bit dot-lines; do
	TOK=$(unique_token)
	edge "$name"
	tx=$(send_port "$SUBMIT_PORT" --auth PLAIN --auth-user alice@EXAMPLE.ORG \
		--auth-password alice-secret-1 --from alice@example.org --to friend@remote.example \
		--data "@$T/msg/$name.eml")
	assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "$name: accepted"
	qid=$(queue_id "$tx")
	delivered=$((delivered + 1))
	wait_for_delivery "$delivered"
	got=$T/msg/got.$name.eml
	dkim_capture "$TOK" "$got" "$name: relayed to the sink"
	case $name in
	trailing-whitespace)
		has "$got" 'Subject: trailing white space  \t \r\n' "$name: header trailing white space kept"
		has "$got" 'text with three spaces   \r\nand a tab\t\r\n   \r\n' "$name: body trailing white space kept"
		;;
	inner-whitespace)
		has "$got" 'SUBJECT: runs  of \t  white   space\r\n' "$name: header white space runs kept"
		has "$got" 'a  b\t\tc \t d\r\n' "$name: body white space runs kept"
		;;
	empty-lines-at-end)
		has "$got" 'last text line\r\n\r\n\r\n\r\n\r\n\r\n' "$name: the empty lines are there"
		;;
	empty-body)
		"$PY" -c 'import sys; b = open(sys.argv[1], "rb").read().split(b"\r\n\r\n", 1)[1]; sys.exit(b.strip(b"\r\n") != b"")' \
			"$got" || fail "$name: the captured body is not empty"
		note "ok: $name: the body is empty"
		;;
	long-folded-headers)
		has "$got" 'Subject: a subject long enough to be folded\r\n over three lines\r\n\tby the sender\r\n' \
			"$name: Subject folding kept"
		has "$got" "\r\n <ref-20.$TOK@example.org>\r\n" "$name: References folding kept"
		has "$got" 'Person 11 <person11@remote.example>,\r\n   Person 12' "$name: Cc folding kept"
		has "$got" "X-Long: $(printf 'long%.0s' {1..175})\r\n" "$name: the 700-character field is one line"
		;;
	folded-after-colon)
		has "$got" 'Subject:\r\n\tfolded right after the colon\r\n' "$name: Subject folded after the colon"
		has "$got" 'X-Folded:\r\n  two\r\n   continuation lines\r\n' "$name: X-Folded kept"
		;;
	8bit)
		has "$got" 'gr\xc3\xbc\xc3\x9fe, \xe2\x82\xac, \xf0\x9f\x93\xa8\r\nLatin-1: caf\xe9\r\n' \
			"$name: 8-bit body bytes kept"
		has "$got" 'Subject: 8-bit K\xc3\xa4se \xe2\x82\xac\r\n' "$name: 8-bit Subject kept"
		;;
	dot-lines)
		has "$got" '\r\n\r\n.\r\n..\r\n...\r\n.x leading dot\r\n . \r\n.\r\nend\r\n' \
			"$name: the dot lines arrive unstuffed"
		;;
	esac
	dkim_assert_signed "$got" "$name" "${sigs[@]}"
	assert_match "$(dkim_log_line "$qid")" ' dkim=signed ' "$name: logged dkim=signed"
done

assert_queue_empty "nothing left in the Postfix queue"
assert_no_log "milter-warden\[[0-9]+\]: (error|warning):" "milter-warden logged no error or warning"
mw_stop
