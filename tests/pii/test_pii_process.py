"""The pii service as a process: Python's grpcio against the real binary over 127.0.0.1.

Covers what only a process shows: configuration (custom recognizers from a YAML file, a bad
file stopping the service with the line, the pseudonym key from the environment keeping
pseudonyms stable across restarts), the client-streaming document RPC from another language,
bad input over the wire (text that is not UTF-8, sizes, unknown types and operators), and
that neither /metrics nor the log ever carries a found value.
"""

import secrets
import tempfile
import unittest
from pathlib import Path

from tests.support import policy_testing as pt

import grpc  # noqa: E402

from policy.pii.v1 import pii_pb2, pii_pb2_grpc  # noqa: E402  (path set by policy_testing)

RECOGNIZERS = """\
recognizers:
  - name: employee_id
    entity_type: EMPLOYEE_ID
    pattern: '\\bEMP-[0-9]{6}\\b'
    score: 0.8
"""

TIMEOUT = 10
PII = None
KEY = secrets.token_hex(32)
CONFIG_DIR = None


def start_pii(key=KEY, name="pii", **flags):
    flags.setdefault("recognizers_file", str(CONFIG_DIR / "recognizers.yaml"))
    flags.setdefault("max_request_bytes", 65536)
    flags.setdefault("max_document_bytes", 262144)
    return pt.ServiceProcess(pt.service_binary("pii"), flags=flags,
                             env={"POLICY_PII_PSEUDONYM_KEY": key}, name=name).start()


def setUpModule():
    global PII, CONFIG_DIR
    CONFIG_DIR = Path(tempfile.mkdtemp(prefix="policy-pii-test-"))
    (CONFIG_DIR / "recognizers.yaml").write_text(RECOGNIZERS)
    PII = start_pii()


def tearDownModule():
    if PII is not None:
        PII.cleanup()


def stub(process=None):
    return pii_pb2_grpc.PiiServiceStub((process or PII).channel)


def message(content, role="user"):
    return pii_pb2.ChatMessage(role=role, content=content.encode()
                               if isinstance(content, str) else content)


def placeholders():
    return pii_pb2.RedactionPolicy(
        default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_PLACEHOLDER))


class RedactTest(unittest.TestCase):
    def test_the_mapping_of_a_request_at_the_limit_dense_with_values_is_restorable(self):
        # pii's receive limit follows from max_request_bytes: a Restore carrying the whole
        # mapping its Redact issued for the largest request (one entry per e-mail address,
        # each with its placeholder and type name) is received.
        limit = 1 << 20
        pii = start_pii(name="pii-dense", max_request_bytes=limit)
        self.addCleanup(pii.cleanup)
        channel = grpc.insecure_channel(pii.address, options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self.addCleanup(channel.close)
        client = pii_pb2_grpc.PiiServiceStub(channel)
        words, size, i = [], 0, 0
        while True:
            word = f"u{i}@x.io"
            if size + len(word) + 1 > limit:
                break
            words.append(word)
            size += len(word) + 1
            i += 1
        redacted = client.Redact(pii_pb2.RedactRequest(
            messages=[message(" ".join(words))], policy=placeholders(), return_mapping=True),
            timeout=60)
        self.assertEqual(len(redacted.mapping), len(words))
        request = pii_pb2.RestoreRequest(
            text=b"First <EMAIL_ADDRESS_1>, last <EMAIL_ADDRESS_%d>." % len(words),
            mapping=redacted.mapping)
        self.assertGreater(request.ByteSize(), 4 << 20)  # Past gRPC's default limit.
        restored = client.Restore(request, timeout=60)
        self.assertEqual(restored.text, f"First u0@x.io, last {words[-1]}.".encode())

    def test_chat_messages_are_redacted_and_the_answer_restored(self):
        response = stub().Redact(pii_pb2.RedactRequest(
            messages=[message("You are a support assistant.", "system"),
                      message("Refund jane@example.com, card 5555 5555 5555 4444, badge "
                              "EMP-204518."),
                      message("I will mail jane@example.com.", "assistant")],
            policy=placeholders(), return_mapping=True), timeout=TIMEOUT)
        texts = [m.content.decode() for m in response.messages]
        self.assertEqual([m.role for m in response.messages], ["system", "user", "assistant"])
        self.assertEqual(texts[1], "Refund <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>, badge "
                                   "<EMPLOYEE_ID_1>.")
        self.assertEqual(texts[2], "I will mail <EMAIL_ADDRESS_1>.")
        self.assertEqual(dict(response.report.counts),
                         {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "EMPLOYEE_ID": 1})
        self.assertEqual(response.report.data_class, pii_pb2.DATA_CLASS_PII)
        self.assertEqual({e.placeholder: e.value for e in response.mapping},
                         {"<EMAIL_ADDRESS_1>": b"jane@example.com",
                          "<CREDIT_CARD_1>": b"5555 5555 5555 4444",
                          "<EMPLOYEE_ID_1>": b"EMP-204518"})
        for finding in response.findings:
            content = response.messages[finding.message_index].content
            self.assertTrue(content[finding.begin:finding.end].startswith(b"<"), finding)
        restored = stub().Restore(pii_pb2.RestoreRequest(
            text=b"Done: <CREDIT_CARD_1> refunded, receipt to <EMAIL_ADDRESS_1>.",
            mapping=response.mapping), timeout=TIMEOUT)
        self.assertEqual(restored.text,
                         b"Done: 5555 5555 5555 4444 refunded, receipt to jane@example.com.")

    def test_pseudonyms_hold_across_restarts_and_change_with_the_key(self):
        def pseudonym(process, project="support-eu"):
            response = stub(process).Redact(pii_pb2.RedactRequest(
                messages=[message("jane@example.com")], project_id=project,
                policy=pii_pb2.RedactionPolicy(
                    default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_HASH))),
                timeout=TIMEOUT)
            return response.messages[0].content

        first = pseudonym(PII)
        self.assertRegex(first.decode(), r"^<EMAIL_ADDRESS_[0-9a-f]{12}>$")
        self.assertNotEqual(pseudonym(PII, "billing-us"), first)
        with start_pii(name="pii-same-key") as same, start_pii(secrets.token_hex(32),
                                                               name="pii-other-key") as other:
            self.assertEqual(pseudonym(same), first)
            self.assertNotEqual(pseudonym(other), first)

    def test_a_deployment_without_a_key_refuses_to_hash(self):
        with start_pii(key="", name="pii-no-key") as process:
            error = pt.call_error(stub(process).Redact, pii_pb2.RedactRequest(
                messages=[message("jane@example.com")], project_id="p",
                policy=pii_pb2.RedactionPolicy(
                    default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_HASH))),
                timeout=TIMEOUT)
            self.assertEqual(error.code(), pt.grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("policy.default_rule.operator: OPERATOR_HASH", error.details())
            self.assertIn("pseudonym key", error.details())


class DocumentTest(unittest.TestCase):
    DOCUMENT = ("Incident report. " * 200 + "Contact: jane.doe@example.com, +44 20 7946 0958. "
                "Card 4111-1111-1111-1111, IBAN GB82 WEST 1234 5698 7654 32. Key "
                "AKIAIOSFODNN7EXAMPLE. Überweisung bestätigt. " + "Closing notes. " * 200)

    def redact_document(self, cuts, options=None):
        document = self.DOCUMENT.encode()
        ends = sorted(cuts) + [len(document)]

        def chunks():
            begin = 0
            for i, end in enumerate(ends):
                request = pii_pb2.RedactDocumentRequest(chunk=document[begin:end])
                if i == 0 and options is not None:
                    request.options.CopyFrom(options)
                begin = end
                yield request

        return stub().RedactDocument(chunks(), timeout=TIMEOUT)

    def test_values_straddling_chunks_are_found(self):
        options = pii_pb2.RedactDocumentOptions(policy=pii_pb2.RedactionPolicy(
            default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_REPLACE)))
        whole = self.redact_document([], options)
        self.assertEqual(dict(whole.report.counts),
                         {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "CREDIT_CARD": 1,
                          "IBAN_CODE": 1, "AWS_ACCESS_KEY": 1})
        document = self.DOCUMENT.encode()
        # Inside each value, and inside the two bytes of "Ü".
        cuts = [document.index(b"doe@") + 2, document.index(b"7946") + 2,
                document.index(b"1111-1111") + 6, document.index(b"WEST") + 1,
                document.index(b"FODNN") + 3, document.index("Ü".encode()) + 1]
        chunked = self.redact_document(cuts, options)
        self.assertEqual(chunked.chunks, len(cuts) + 1)
        self.assertEqual(chunked.document_bytes, len(document))
        self.assertEqual(chunked.content, whole.content)
        self.assertEqual(dict(chunked.report.counts), dict(whole.report.counts))
        self.assertNotIn(b"jane.doe", chunked.content)
        self.assertIn("Überweisung bestätigt".encode(), chunked.content)

    def test_a_document_over_the_limit_is_refused(self):
        def chunks():
            for _ in range(40):
                yield pii_pb2.RedactDocumentRequest(chunk=b"x" * 8192)

        error = pt.call_error(stub().RedactDocument, chunks(), timeout=TIMEOUT)
        self.assertEqual(error.code(), pt.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("more than the limit of 262144 bytes", error.details())


class BadInputTest(unittest.TestCase):
    def assert_invalid(self, request, expected):
        error = pt.call_error(stub().Redact, request, timeout=TIMEOUT)
        self.assertEqual(error.code(), pt.grpc.StatusCode.INVALID_ARGUMENT, error.details())
        self.assertIn(expected, error.details())

    def test_each_problem_is_named(self):
        self.assert_invalid(pii_pb2.RedactRequest(messages=[message("ok"), message(b"\xe2\x82")]),
                            "messages[1]: not valid UTF-8 at byte 0")
        self.assert_invalid(pii_pb2.RedactRequest(messages=[message("a" * 70000)]),
                            "more than the limit of 65536")
        self.assert_invalid(pii_pb2.RedactRequest(
            messages=[message("x")],
            policy=pii_pb2.RedactionPolicy(rules=[pii_pb2.EntityRule(entity_type="PASSPORT")])),
            "unknown entity type 'PASSPORT'")
        self.assert_invalid(pii_pb2.RedactRequest(
            messages=[message("x")],
            policy=pii_pb2.RedactionPolicy(rules=[pii_pb2.EntityRule(entity_type="US_SSN",
                                                                     operator=42)])),
            "policy.rules[0].operator: 42 is not a known operator")
        self.assert_invalid(pii_pb2.RedactRequest(
            messages=[message("x")], policy=pii_pb2.RedactionPolicy(min_score=2.0)),
            "policy.min_score: 2 is outside [0, 1]")
        error = pt.call_error(stub().Scan, pii_pb2.ScanRequest(
            messages=[message("x")], options=pii_pb2.ScanOptions(entity_types=["us_ssn"])),
            timeout=TIMEOUT)
        self.assertEqual(error.code(), pt.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("options.entity_types[0]", error.details())

    def test_a_request_that_is_not_the_message_is_named(self):
        # ScanRequest.messages[0] claiming 9 bytes where 2 follow, sent as raw bytes.
        scan = PII.channel.unary_unary("/policy.pii.v1.PiiService/Scan",
                                       request_serializer=lambda raw: raw,
                                       response_deserializer=lambda raw: raw)
        error = pt.call_error(scan, b"\x0a\x09\x0a\x01", timeout=TIMEOUT)
        self.assertEqual(error.code(), pt.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(error.details(), "request is not a valid policy.pii.v1.ScanRequest: "
                                          "malformed protobuf, or a string field that is not UTF-8")
        # The service answers the next, well-formed request.
        answer = stub().Scan(pii_pb2.ScanRequest(messages=[message("mail ann@example.com")]),
                             timeout=TIMEOUT)
        self.assertEqual(dict(answer.counts), {"EMAIL_ADDRESS": 1})

    def test_a_bad_recognizers_file_stops_the_service_naming_the_line(self):
        bad = CONFIG_DIR / "bad.yaml"
        bad.write_text("recognizers:\n  - name: ticket\n    entity_type: TICKET\n"
                       "    pattern: 'TCK-[0-9'\n")
        result = pt.run_binary(pt.service_binary("pii"), flags={
            "recognizers_file": str(bad), "listen": "127.0.0.1:0", "metrics_listen": ""})
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertIn("bad.yaml: line 2: recognizers[0] (ticket): pattern: invalid RE2 pattern",
                      output)

    def test_max_document_time_out_of_bounds_is_refused_naming_the_bounds(self):
        for value in ("0s", "61m"):
            with self.subTest(max_document_time=value):
                result = pt.run_binary(pt.service_binary("pii"), flags={
                    "max_document_time": value, "listen": "127.0.0.1:0", "metrics_listen": ""})
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("max_document_time must be more than 0s and at most 1h",
                              result.stdout + result.stderr)


class ObservabilityTest(unittest.TestCase):
    def test_metrics_and_log_count_findings_without_values(self):
        value = "zed.quux.%s@example.org" % secrets.token_hex(4)
        before = pt.metric_value(pt.scrape_metrics(PII.metrics_port), "policy_pii_findings_total",
                                 entity_type="EMAIL_ADDRESS") or 0
        for _ in range(3):
            stub().Scan(pii_pb2.ScanRequest(messages=[message(f"mail {value} now")]),
                        timeout=TIMEOUT)
        metrics = pt.scrape_metrics(PII.metrics_port)
        after = pt.metric_value(metrics, "policy_pii_findings_total", entity_type="EMAIL_ADDRESS")
        self.assertEqual(after - before, 3)
        self.assertGreater(pt.metric_value(metrics, "policy_pii_scanned_bytes_total"), 0)
        self.assertNotIn(value, metrics)
        self.assertNotIn(value, PII.log_text())
        self.assertNotIn(KEY, PII.log_text())


if __name__ == "__main__":
    unittest.main()
