# Proves WinRM reaches this node with the operator's credentials and reports who and where we are.
param()

$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$computer = Get-CimInstance -ClassName Win32_ComputerSystem
$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = [Security.Principal.WindowsPrincipal]::new($identity)
$isAdmin = $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
# The node's own addresses, for checking the cluster and access point addresses typed later:
# manual and DHCP ones only (not loopback, link-local or APIPA, which are WellKnown), and not the
# cluster's own addresses a node holds (those are added with SkipAsSource).
$addresses = @(
    Get-NetIPAddress -ErrorAction SilentlyContinue |
        Where-Object { [string]$_.PrefixOrigin -ne 'WellKnown' -and -not $_.SkipAsSource } |
        ForEach-Object {
            [PSCustomObject]@{
                address       = [string]$_.IPAddress
                prefix_length = [int]$_.PrefixLength
                interface     = [string]$_.InterfaceAlias
            }
        }
)

[PSCustomObject]@{
    computer_name  = $env:COMPUTERNAME
    dns_host_name  = $computer.DNSHostName
    domain         = $computer.Domain
    part_of_domain = [bool]$computer.PartOfDomain
    user           = $identity.Name
    is_admin       = [bool]$isAdmin
    ps_version     = $PSVersionTable.PSVersion.ToString()
    os_caption     = $os.Caption
    os_version     = $os.Version
    boot_time      = $os.LastBootUpTime.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    addresses      = $addresses
} | ConvertTo-Json -Compress -Depth 8
