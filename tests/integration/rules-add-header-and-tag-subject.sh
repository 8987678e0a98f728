#!/usr/bin/env bash
# shellcheck source=lib.sh disable=SC2119
# Proves: the header changes rules collect are made by Postfix at end of message. A message
# that carries X-Strip-Me twice (apart from each other) scores 2.5 at eoh; an eom rule then
# adds "X-MW-Verdict: score=2.5 labels=stripped-header=+2.5 client=127.0.0.1 100%"
# (%{score}, %{labels}, %{client.ip} and %% interpolated), prefixes the Subject with "[SPAM] "
# and deletes X-Strip-Me. At the sink: the new header once with exactly that value,
# "Subject: [SPAM] original" (the only Subject), no X-Strip-Me left but the look-alike
# X-Strip-Me-Not kept, every other header as sent, and the body byte for byte.
. "$(dirname "$0")/lib.sh"
it_init
rules_write "$T/tag.rules" <<'RULES'
rule stripped at eoh when header "X-Strip-Me" present then score +2.5 "stripped-header"
rule tag at eom when score >= 2
    then add-header "X-MW-Verdict" "score=%{score} labels=%{labels} client=%{client.ip} 100%%",
         prefix-subject "[SPAM] ",
         delete-header "X-Strip-Me"
RULES
rules_check "$T/tag.rules" "the tagging rules load"
mw_config rules="$T/tag.rules"
it_start

tok=$(unique_token)
mkmsg "$T/msg/m1" "original" "$tok" sender@mw-test.example rcpt@example.com
# Two copies of the header to delete, one before and one after Subject, and a look-alike.
sed -i -e '0,/^Subject: /s//X-Strip-Me: first copy\n&/' \
	-e '0,/^Date: /s//X-Strip-Me: second copy\nX-Strip-Me-Not: keep me\n&/' "$T/msg/m1"
assert_eq "$(grep -c '^X-Strip-Me: ' "$T/msg/m1")" 2 "harness: the message carries X-Strip-Me twice"
tx=$(send --to rcpt@example.com --data "$T/msg/m1")
assert_match "$tx" '^<-  250 2\.0\.0 Ok: queued as ' "Postfix accepts the message"
qid=$(queue_id "$tx")

wait_for_delivery 1
sink_one "$tok" "the message reached the sink once"
# Whole lines, as a reader of the message sees them (a space after the colon, as everywhere).
assert_eq "$(sink_header "$SINK_FILE" X-MW-Verdict)" \
	"X-MW-Verdict: score=2.5 labels=stripped-header=+2.5 client=127.0.0.1 100%" \
	"one X-MW-Verdict header, with score, labels, client address and a literal % interpolated"
assert_eq "$(sink_header "$SINK_FILE" Subject)" "Subject: [SPAM] original" "Subject: [SPAM] original (and no other Subject)"
assert_eq "$(sink_header "$SINK_FILE" X-Strip-Me | wc -l)" 0 "no copy of X-Strip-Me left"
assert_eq "$(sink_header "$SINK_FILE" X-Strip-Me-Not)" "X-Strip-Me-Not: keep me" "the look-alike X-Strip-Me-Not is kept"
assert_eq "$(sink_header "$SINK_FILE" X-MW-Test)" "X-MW-Test: header kept intact" "an unrelated header is kept"
assert_eq "$(sink_header "$SINK_FILE" Message-ID)" "Message-ID: <$tok@mw-test.example>" "Message-ID kept"
if ! diff -u <(body_of "$T/msg/m1") <(body_of "$SINK_FILE"); then
	fail "the delivered body differs from the body sent"
fi
note "ok: body delivered byte for byte"

assert_log ": $qid: .* nrcpt=1 (.* )?score=2\.5 (.* )?labels=stripped-header=\+2\.5 (.* )?rules=stripped,tag (.* )?action=accept" \
	"accept line for $qid with the score, the label and rules=stripped,tag"
assert_no_match "$(cat "$T/log/maillog")" 'warning:.*[Mm]ilter|milter-reject' "Postfix logged no milter trouble"
assert_queue_empty "nothing left in the Postfix queue"
mw_stop
