"""Every Windows rule the lab enforces, in one list, all on by default.

`../shared/reference/windows-rules.md` (summarised in app/lab/README.md) is the lab's specification:
each rule here names the section it comes from, the public source, where the lab enforces it, and the
test that shows a script breaking it fails the way Windows fails. There is no switch that turns a rule
off: a lab kinder than Windows hides exactly the bugs a first real install would hit.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Rule:
    """One Windows behaviour the lab models."""

    name: str
    section: str  # the windows-rules.md section
    source: str  # where Windows' behaviour is documented
    enforcement: str  # how and where the lab enforces it
    test: str  # the test (path::function) where a script breaking the rule fails


RULES: tuple[Rule, ...] = (
    Rule(
        "second_hop",
        "1",
        "FailoverClusters cmdlet docs (Notes: cannot be run remotely without CredSSP); "
        "MS clustering blog 'PowerShell Remoting and the Double-Hop Problem'",
        "handlers call ctx.reach('ad'|'sql'|'nodes'|'share'); without CredSSP or a task logon "
        "that holds a password it fails with the text Windows gives (ANONYMOUS LOGON, AD "
        "unreachable, access denied on the other node). The dispatcher also refuses a handler "
        "that did not consult every resource its script text reaches.",
        "tests/lab/test_windows_rules.py::test_second_hop",
    ),
    Rule(
        "credssp_server",
        "1",
        "Enable-WSManCredSSP / Disable-WSManCredSSP docs (WSMan:\\localhost\\Service\\Auth\\CredSSP; "
        "`winrm get winrm/config/service/auth` shows CredSSP = false as shipped); MS-CSSP",
        "a node offers CredSSP in its 401 challenge only when nodes[N].winrm.credssp is true (what "
        "Enable-WSManCredSSP -Role Server sets); the handshake is the real one (pyspnego's acceptor: "
        "TLS, NTLM inside it, public-key binding, delegated TSCredentials) and the session is "
        "'credssp', so it may make the second hop, only once the delegated password is one the "
        "node accepts",
        "tests/lab/test_credssp.py::test_node_without_credssp_does_not_offer_it",
    ),
    Rule(
        "kerberos_server",
        "1",
        "about_Remote_Troubleshooting (Kerberos needs the computer's SPN; an IP address has none, "
        "so Windows falls back to NTLM or fails); MS-KILE; RFC 4559 (Negotiate over HTTP)",
        "a node accepts Kerberos only with a keytab holding its HTTP/<node FQDN> key from the "
        "realm's KDC (a real MIT KDC in the tests); a ticket for another name, or any ticket when "
        "the node has no key, is refused with 401; the session is 'kerberos', which, like NTLM, "
        "makes no second hop (no delegation is modelled)",
        "tests/lab/test_kerberos.py::test_ticket_for_another_node_is_refused",
    ),
    Rule(
        "ad_module",
        "2",
        "Install-WindowsFeature docs (RSAT-AD-PowerShell is a separate feature); "
        "microsoft/ReportingServicesTools#379",
        "member servers have no ActiveDirectory module until RSAT-AD-PowerShell is installed; "
        "a script that loads it fails 'The specified module ... was not loaded'",
        "tests/lab/test_windows_rules.py::test_ad_module_missing",
    ),
    Rule(
        "task_logon",
        "1",
        "Register-ScheduledTask docs; policy 'Network access: Do not allow storage of passwords' "
        "(0x80070520); User Rights Assignment 'Log on as a batch job'",
        "a one-shot task registered with a user and password logs on with network credentials; "
        "it fails 0x80070520 when the node forbids stored passwords and 'batch logon' when the "
        "account lacks the right (default holders: Administrators, Backup Operators, "
        "Performance Log Users)",
        "tests/lab/test_windows_rules.py::test_task_logon",
    ),
    Rule(
        "shell_job",
        "3",
        "jborean93/pypsrp#108 and #32; MicrosoftDocs/PowerShell-Docs#8020; PowerShell/PowerShell#16001",
        "a process started inside the shell (Start-Process, & exe, msiexec) is killed when its "
        "runspace pool closes; Win32_Process Create and scheduled tasks survive",
        "tests/lab/test_windows_rules.py::test_shell_job",
    ),
    Rule(
        "restart_ends_shells",
        "4",
        "Restart-Computer docs; WinRM shells live in the node's WinRM service",
        "a script that restarts the node never returns; every shell of the node is gone; a "
        "restart scheduled with `shutdown /r /t N` ends, when it begins, every shell opened "
        "before it",
        "tests/lab/test_windows_rules.py::test_restart_ends_shells",
    ),
    Rule(
        "secure_string_as_text",
        "5",
        ".NET SecureString class (no ToString override: Object.ToString returns the type name); "
        "about_Parameter_Binding (arguments are converted to the parameter's type)",
        "a SecureString sent to a parameter declared [string] binds as the text "
        "'System.Security.SecureString'; [object] or [securestring] parameters receive the secret",
        "tests/lab/test_windows_rules.py::test_secure_string_as_text",
    ),
    Rule(
        "msi_properties",
        "6",
        "lithnet/access-manager installer .aip Property table (branch role-jit)",
        "the lab installer knows USER_NAME, USER_PASSWORD, SQLSERVER, INSTALL_SQL_EXPRESS "
        "(default 1: installs a local SQL Express instance), APPDIR, CONFIG_PATH, LOG_PATH, "
        "AMS_ADMINS_SID; any other property is ignored, as msiexec does",
        "tests/lab/test_windows_rules.py::test_msi_properties",
    ),
    Rule(
        "ams_settings_location",
        "6",
        "lithnet/access-manager RegistryProvider.cs; Lithnet KB000006",
        "the installer writes Parameters\\SQLServer, ConfigPath, LogPath, AMSAdmins (no "
        "ConnectionString); the license is read from Parameters\\LicenseData or appsettings",
        "tests/lab/test_windows_rules.py::test_ams_settings_location",
    ),
    Rule(
        "host_config_by_version",
        "6",
        "Lithnet Set-AmsHostConfig docs, v2 and v3",
        "Set-AmsHostConfig binds only the parameters of the installed major version "
        "(v3 has no -ApiEnabled/-ApiHostname)",
        "tests/lab/test_windows_rules.py::test_host_config_by_version",
    ),
    Rule(
        "gmsa_principals_replace",
        "7",
        "Set-ADServiceAccount docs (-PrincipalsAllowedToRetrieveManagedPassword replaces)",
        "the lab's Set-ADServiceAccount replaces the list with exactly what was sent",
        "tests/lab/test_windows_rules.py::test_gmsa_principals_replace",
    ),
    Rule(
        "kds_effective_delay",
        "7",
        "Add-KdsRootKey docs (10 hours before domain controllers use a new key)",
        "a KDS root key younger than 10 hours is not usable; gMSA password retrieval fails",
        "tests/lab/test_windows_rules.py::test_kds_effective_delay",
    ),
    # WinRM itself (section 4)
    Rule(
        "unknown_selectors",
        "4",
        "jborean93/pypsrp tests/tests_pypsrp/responses: test_psrp_receive_failure.yml, "
        "test_winrs_bad_cmd_id.yml, test_psrp_is_alive_invalid_selectors.yml",
        "a request naming a ShellId the node does not have (closed, idle-expired, lost in a "
        "restart) or a Receive for an unknown CommandId gets HTTP 500 with s:Sender, subcode "
        "w:InvalidSelectors, FaultDetail .../faultDetail/UnexpectedSelectors and WSManFault code "
        "2150858843 (app/lab/wsman.py shell_not_found/command_not_found)",
        "tests/lab/test_winrm_rules.py::test_unknown_shell_id",
    ),
    Rule(
        "max_timeout",
        "4",
        "MS-WSMV 3.1.4.1.6 wsman:OperationTimeout (a value above MaxTimeoutms is served as "
        "MaxTimeoutms); pypsrp test_psrp_is_alive_other_wsman_error.yml (invalid timeout)",
        "Receive waits at most MaxTimeoutms (60,000 ms, LabServer max_timeout_ms) whatever the "
        "client asks, then answers w:TimedOut; an OperationTimeout that is not a positive "
        "duration is refused with s:Sender a:InvalidMessageInformationHeader, code 2150858767",
        "tests/lab/test_winrm_rules.py::test_operation_timeout_above_max_timeout_is_capped",
    ),
    Rule(
        "max_envelope",
        "4",
        "winrm/config MaxEnvelopeSizekb 500; ansible-collections/ansible.windows#620 (WinRM answers "
        "HTTP 413); wsmerror.h ERROR_WSMAN_HTTP_REQUEST_TOO_LARGE_STATUS 0x80338111",
        "a request envelope above MaxEnvelopeSizekb (LabServer max_envelope_kb, 500 KiB) gets "
        "HTTP 413 with an empty body (server.py LabRequestHandler.do_POST)",
        "tests/lab/test_winrm_rules.py::test_envelope_above_max_envelope_size_is_refused",
    ),
    Rule(
        "shell_quota",
        "4",
        "Microsoft 'Quota Management for Remote Shells' (MaxShellsPerUser 30); MS-WSMV 3.1.4.5.2.1 "
        "wsman:QuotaLimit; wsmerror.h ERROR_WSMAN_QUOTA_MAX_SHELLS 0x803381A5; PowerShell team "
        "blog 'Configuring WSMAN Limits' (message text)",
        "the Create of a user who already has MaxShellsPerUser open shells on the node "
        "(LabServer max_shells_per_user, default 30) gets s:Sender w:QuotaLimit, code 2150859173, "
        "'This user is allowed a maximum number of N concurrent shells, which has been exceeded.'",
        "tests/lab/test_winrm_rules.py::test_31st_shell_of_a_user_is_refused",
    ),
    Rule(
        "idle_timeout",
        "4",
        "Microsoft 'Quota Management for Remote Shells' (IdleTimeout; winrm get winrm/config "
        "shows 7200000); pypsrp test_psrp_is_alive_invalid_selectors.yml (IdleTimeOut PT60S "
        "asked, PT60.000S granted)",
        "a shell with no request in progress for longer than its IdleTimeout (the one Create asked "
        "for, else LabServer idle_timeout_ms, default 7,200,000 ms) is deleted: its pipelines stop "
        "and later requests get the unknown_selectors fault",
        "tests/lab/test_winrm_rules.py::test_idle_shell_is_deleted",
    ),
    Rule(
        "receive_running",
        "4",
        "pypsrp test_winrs_operation_timeout.yml (CommandState Running without ExitCode, "
        "w:TimedOut 2150858793 while the command is slow)",
        "a pipeline's ReceiveResponse carries CommandState Running and no ExitCode until it ends, "
        "then Done with ExitCode 0; with nothing to send before OperationTimeout the answer is "
        "s:Receiver w:TimedOut 2150858793 and the client receives again",
        "tests/lab/test_winrm_rules.py::test_receive_reports_running_until_done",
    ),
)


def starts_outside_shell(text: str) -> bool:
    """Rule shell_job: whether a script starts its process where the shell's job object cannot
    reach it (Win32_Process Create through CIM/WMI, or a scheduled task)."""
    lowered = text.lower()
    via_wmi = "win32_process" in lowered and "-methodname create" in lowered
    return via_wmi or "register-scheduledtask" in lowered


def by_name(name: str) -> Rule:
    """The rule called `name`; KeyError when the lab has none."""
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(name)
