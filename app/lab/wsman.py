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
INVALID_SELECTORS = 2150858843  # 0x8033805B ERROR_WSMAN_UNEXPECTED_SELECTORS (shell not found)
UNSUPPORTED_ACTION = 2150858754  # 0x80338002 ERROR_WSMAN_UNSUPPORTED_ACTION (not real: lab code)

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
    operation_timeout: float
    max_envelope_size: int
    selectors: dict
    options: dict
    body: ET.Element | None

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
    """A fault to answer with (HTTP 500 and a SOAP Fault body)."""

    def __init__(self, code: int, reason: str, subcode: str = "w:InternalError") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode


def timeout_fault() -> WSManFault:
    """The OperationTimeout fault that pypsrp's poll loop retries silently."""
    reason = (
        "The WS-Management service cannot complete the operation within the time specified in "
        "OperationTimeout.  "
    )
    return WSManFault(OPERATION_TIMEOUT, reason, "w:TimedOut")


def shell_not_found(shell_id: str | None) -> WSManFault:
    """The fault Windows returns for a ShellId it does not know (e.g. after a reboot)."""
    reason = (
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server."
    )
    return WSManFault(INVALID_SELECTORS, reason, "w:InvalidSelectors")


def parse_request(data: bytes) -> Request:
    """Parse a SOAP envelope sent by pypsrp."""
    root = ET.fromstring(data)  # noqa: S314 - loopback lab; expat refuses external entities
    header = root.find("s:Header", NS)
    if header is None:
        raise WSManFault(UNSUPPORTED_ACTION, "The SOAP envelope has no header.")
    body = root.find("s:Body", NS)
    return Request(
        action=_text(header, "wsa:Action"),
        message_id=_text(header, "wsa:MessageID"),
        resource_uri=_text(header, "wsman:ResourceURI"),
        operation_timeout=parse_duration(_text(header, "wsman:OperationTimeout") or "PT20S"),
        max_envelope_size=int(_text(header, "wsman:MaxEnvelopeSize") or "153600"),
        selectors=_named(header, "wsman:SelectorSet/wsman:Selector"),
        options=_named(header, "wsman:OptionSet/wsman:Option"),
        body=body[0] if body is not None and len(body) else None,
    )


def parse_duration(text: str) -> float:
    """Seconds in an xs:duration such as `PT20S` or `PT1M30.5S`."""
    match = _DURATION.match(text.strip())
    if not match:
        return 20.0
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
    body = (
        f"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{fault.subcode}"
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text>'
        '</s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/'
        f'wsmanfault" Code="{fault.code}" Machine={quoteattr(machine)}><f:Message>{reason}'
        "</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    stub = request or Request(FAULT_ACTION, "", "", 20.0, 153600, {}, {}, None)
    return envelope(stub, FAULT_ACTION, body)


def create_response(request: Request, shell_id: str, address: str, owner: str) -> bytes:
    """CreateResponse with the ResourceCreated selector pypsrp reads the ShellId from."""
    uri = escape(request.resource_uri)
    body = (
        f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
        f"</a:ReferenceParameters></x:ResourceCreated>{shell_xml(shell_id, uri, owner)}"
    )
    return envelope(request, TRANSFER + "CreateResponse", body)


def shell_xml(shell_id: str, uri: str, owner: str, state: str = "Connected") -> str:
    """The rsp:Shell description returned by Create and Get."""
    return (
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{uri}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr"
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
    """ReceiveResponse: one rsp:Stream per payload, plus CommandState Done when finished."""
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
