"""WS-Management SOAP: parse pypsrp's requests and build responses shaped like Windows' own."""

import base64
import dataclasses
import re
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
DONE = SHELL + "CommandState/Done"
RUNNING = SHELL + "CommandState/Running"

OPERATION_TIMEOUT = 2150858793  # 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT
UNEXPECTED_SELECTORS = 2150858843  # 0x8033805B: unknown ShellId or CommandId
INVALID_SELECTORS = UNEXPECTED_SELECTORS  # the name this module used before; same code
INVALID_HEADER = 2150858767  # 0x8033800F ERROR_WSMAN_INVALID_MESSAGE_INFORMATION_HEADER
QUOTA_MAX_SHELLS = 2150859173  # 0x803381A5 ERROR_WSMAN_QUOTA_MAX_SHELLS (per-user shell quota)
UNSUPPORTED_ACTION = 2150858754  # 0x80338002 ERROR_WSMAN_UNSUPPORTED_ACTION (not real: lab code)

# WinRM service defaults (winrm get winrm/config): MaxTimeoutms, MaxEnvelopeSizekb, and the winrs
# quotas MaxShellsPerUser and IdleTimeout (7,200,000 ms on 2016 and later; 180,000 in the spec).
MAX_TIMEOUT_MS = 60_000
MAX_ENVELOPE_KB = 500
MAX_SHELLS_PER_USER = 30
IDLE_TIMEOUT_MS = 7_200_000

SENDER = "s:Sender"
RECEIVER = "s:Receiver"
UNEXPECTED_SELECTORS_DETAIL = (
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
)
_PROVIDER_OPEN = (
    '<f:ProviderFault provider="Shell provider" path="%systemroot%\\system32\\WsmSvc.dll">'
)
_SELECTORS_REASON = (
    "The WS-Management service cannot process the request because the request contained invalid "
    "selectors for the resource. "
)

_ENVELOPE_OPEN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
    ' xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer"'
    ' xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"'
    ' xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"'
    ' xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
)
_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")


@dataclasses.dataclass
class Request:
    """The parts of a WSMan request the lab acts on."""

    action: str
    message_id: str
    resource_uri: str
    operation_timeout: float | None  # seconds; None when the header is not a valid duration
    max_envelope_size: int
    selectors: dict
    options: dict
    body: ET.Element | None
    timeout_text: str = ""  # the OperationTimeout header as sent

    @property
    def verb(self) -> str:
        """The last path segment of the action URI, e.g. `Receive` or `ctrl_c`."""
        return self.action.rsplit("/", 1)[-1]

    @property
    def shell_id(self) -> str | None:
        """The ShellId selector, upper-cased as Windows reports it."""
        value = self.selectors.get("ShellId")
        return value.upper() if value else None


class WSManFault(Exception):
    """A fault to answer with (HTTP 500 and a SOAP Fault body).

    `value` is the SOAP Code (`s:Sender` when the request is at fault, `s:Receiver` otherwise),
    `detail` an optional `w:FaultDetail` URI, `message` the WSManFault's own f:Message when Windows
    words it differently from the Reason, and `provider` wraps that message in a ProviderFault
    element the way the Shell provider does."""

    def __init__(
        self,
        code: int,
        reason: str,
        subcode: str = "w:InternalError",
        *,
        value: str = RECEIVER,
        detail: str | None = None,
        message: str | None = None,
        provider: bool = False,
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode
        self.value = value
        self.detail = detail
        self.message = message if message is not None else reason
        self.provider = provider


def timeout_fault() -> WSManFault:
    """The OperationTimeout fault that pypsrp's poll loop retries silently."""
    reason = (
        "The WS-Management service cannot complete the operation within the time specified in "
        "OperationTimeout.  "
    )
    return WSManFault(OPERATION_TIMEOUT, reason, "w:TimedOut")


def shell_not_found(shell_id: str | None, provider: bool = False) -> WSManFault:
    """Windows' answer for a ShellId it does not know (closed, idle-expired, or lost in a reboot).

    Shape of the recordings in jborean93/pypsrp tests/tests_pypsrp/responses: s:Sender,
    w:InvalidSelectors, FaultDetail UnexpectedSelectors, code 2150858843. A Get of the shell
    (`provider=True`, RunspacePool.is_alive) nests the message in the Shell provider's fault."""
    if provider:
        return _selectors_fault(_SELECTORS_REASON, provider=True)
    message = (
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
        "create a new shell and retry the operation. "
    )
    return _selectors_fault(message)


def command_not_found() -> WSManFault:
    """Windows' answer for a CommandId the shell does not know (test_psrp_receive_failure.yml)."""
    message = (
        "The Windows Remote Shell received a request to perform an operation on a command "
        "identifier that does not exist. Either the command has completed execution or the "
        "client specified an invalid command identifier. "
    )
    return _selectors_fault(message)


def _selectors_fault(message: str, provider: bool = False) -> WSManFault:
    return WSManFault(
        UNEXPECTED_SELECTORS,
        _SELECTORS_REASON,
        "w:InvalidSelectors",
        value=SENDER,
        detail=UNEXPECTED_SELECTORS_DETAIL,
        message=message,
        provider=provider,
    )


def invalid_timeout_fault(text: str) -> WSManFault:
    """An OperationTimeout that is not a usable duration (test_psrp_is_alive_other_wsman_error)."""
    return WSManFault(
        INVALID_HEADER,
        "The WS-Management service cannot process the request. The request contains one or more "
        "invalid SOAP headers. ",
        "a:InvalidMessageInformationHeader",
        value=SENDER,
        message=(
            "The WS-Management service cannot process the request. The XML contains an invalid "
            f"timeout field in the SOAP header: {text}. "
        ),
    )


def shell_quota_fault(limit: int) -> WSManFault:
    """Create refused by the MaxShellsPerUser quota (MS-WSMV 3.1.4.5.2.1 wsman:QuotaLimit)."""
    reason = (
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        f"number of {limit} concurrent shells, which has been exceeded. Close existing shells or "
        "raise the quota for this user. "
    )
    return WSManFault(QUOTA_MAX_SHELLS, reason, "w:QuotaLimit", value=SENDER)


def parse_request(data: bytes) -> Request:
    """Parse a SOAP envelope sent by pypsrp."""
    root = ET.fromstring(data)  # noqa: S314 - loopback lab; expat refuses external entities
    header = root.find("s:Header", NS)
    if header is None:
        raise WSManFault(UNSUPPORTED_ACTION, "The SOAP envelope has no header.")
    body = root.find("s:Body", NS)
    timeout_text = _text(header, "wsman:OperationTimeout")
    return Request(
        action=_text(header, "wsa:Action"),
        message_id=_text(header, "wsa:MessageID"),
        resource_uri=_text(header, "wsman:ResourceURI"),
        operation_timeout=parse_duration(timeout_text or "PT20S", None),
        max_envelope_size=int(_text(header, "wsman:MaxEnvelopeSize") or "153600"),
        selectors=_named(header, "wsman:SelectorSet/wsman:Selector"),
        options=_named(header, "wsman:OptionSet/wsman:Option"),
        body=body[0] if body is not None and len(body) else None,
        timeout_text=timeout_text,
    )


def parse_duration(text: str, default: float | None = 20.0) -> float | None:
    """Seconds in an xs:duration such as `PT20S` or `PT1M30.5S` (`default` when it is not one)."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def body_find(request: Request, path: str) -> ET.Element | None:
    """Find an element below the body's first child."""
    return request.body.find(path, NS) if request.body is not None else None


def envelope(request: Request, action: str, body: str) -> bytes:
    """A response envelope that echoes RelatesTo as pypsrp requires."""
    text = (
        f"{_ENVELOPE_OPEN}<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(request.message_id)}</a:RelatesTo>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
    return text.encode("utf-8")


def fault_envelope(request: Request | None, fault: WSManFault, machine: str) -> bytes:
    """A SOAP Fault carrying a WSManFault code, as Windows sends with HTTP 500."""
    reason = escape(fault.reason)
    detail = f"<w:FaultDetail>{fault.detail}</w:FaultDetail>" if fault.detail else ""

    def wsman_fault(content: str) -> str:
        return (
            '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
            f'Code="{fault.code}" Machine={quoteattr(machine)}><f:Message>{content}</f:Message>'
            "</f:WSManFault>"
        )

    message = wsman_fault(escape(fault.message))
    if fault.provider:
        message = wsman_fault(f"{_PROVIDER_OPEN}{message}</f:ProviderFault>")
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.value}</s:Value><s:Subcode><s:Value>{fault.subcode}"
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text>'
        f"</s:Reason><s:Detail>{detail}{message}</s:Detail></s:Fault>"
    )
    stub = request or Request(FAULT_ACTION, "", "", 20.0, 153600, {}, {}, None)
    return envelope(stub, FAULT_ACTION, body)


def create_response(
    request: Request, shell_id: str, address: str, owner: str, idle_seconds: float = 7200.0
) -> bytes:
    """CreateResponse with the ResourceCreated selector pypsrp reads the ShellId from."""
    uri = escape(request.resource_uri)
    shell = shell_xml(shell_id, uri, owner, idle_seconds=idle_seconds)
    body = (
        f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
        f"</a:ReferenceParameters></x:ResourceCreated>{shell}"
    )
    return envelope(request, TRANSFER + "CreateResponse", body)


def shell_xml(
    shell_id: str, uri: str, owner: str, state: str = "Connected", idle_seconds: float = 7200.0
) -> str:
    """The rsp:Shell description returned by Create and Get."""
    return (
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{uri}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
        f"<rsp:IdleTimeOut>PT{idle_seconds:.3f}S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr"
        "</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
        f"<rsp:State>{state}</rsp:State></rsp:Shell>"
    )


def command_response(request: Request, command_id: str) -> bytes:
    """CommandResponse naming the pipeline's CommandId."""
    body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
    return envelope(request, SHELL + "CommandResponse", body)


def receive_response(
    request: Request, chunks: list[bytes], command_id: str | None, done: bool
) -> bytes:
    """ReceiveResponse: one rsp:Stream per payload; a pipeline's answer also carries its
    CommandState: Running without an exit code until it ends, then Done with ExitCode 0."""
    attr = f' CommandId="{command_id}"' if command_id else ""
    streams = "".join(
        f'<rsp:Stream Name="stdout"{attr}>{base64.b64encode(c).decode()}</rsp:Stream>'
        for c in chunks
    )
    if command_id and done:
        streams += (
            f'<rsp:CommandState CommandId="{command_id}" State="{DONE}">'
            "<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>"
        )
    elif command_id:
        streams += (
            f'<rsp:CommandState CommandId="{command_id}" State="{RUNNING}"></rsp:CommandState>'
        )
    body = f"<rsp:ReceiveResponse>{streams}</rsp:ReceiveResponse>"
    return envelope(request, SHELL + "ReceiveResponse", body)


def empty_response(request: Request, action: str) -> bytes:
    """Responses with an empty body or a fixed element: Send, Signal, Delete."""
    bodies = {
        "SendResponse": "<rsp:SendResponse/>",
        "SignalResponse": "<rsp:SignalResponse/>",
    }
    verb = action.rsplit("/", 1)[-1]
    return envelope(request, action, bodies.get(verb, ""))


def config_response(request: Request, max_envelope_kb: int) -> bytes:
    """Answer pypsrp's update_max_payload_size() query of the WinRM config."""
    body = (
        '<cfg:Config xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config">'
        f"<cfg:MaxEnvelopeSizekb>{max_envelope_kb}</cfg:MaxEnvelopeSizekb></cfg:Config>"
    )
    return envelope(request, TRANSFER + "GetResponse", body)


def response_overhead(request: Request, command_id: str | None) -> int:
    """Bytes a ReceiveResponse needs besides the base64 payloads (with some slack)."""
    return len(receive_response(request, [], command_id, True)) + 512


def _text(parent: ET.Element, path: str) -> str:
    element = parent.find(path, NS)
    return (element.text or "").strip() if element is not None else ""


def _named(parent: ET.Element, path: str) -> dict:
    return {e.attrib.get("Name", ""): (e.text or "") for e in parent.findall(path, NS)}
