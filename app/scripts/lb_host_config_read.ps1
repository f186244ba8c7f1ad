# Reads this node's own Access Manager host configuration (the settings a farm does not share through its database): web app, agent access, the external host name, and whether the bound TLS certificate covers that name.
[CmdletBinding()]
param(
    [ValidateRange(1, 65535)][int]$Port = 443,
    [ValidatePattern('^[A-Za-z0-9.-]{0,255}$')][string]$ExternalHostName = ''
)

$ErrorActionPreference = 'Stop'

function Test-NameCovered([string]$Name, [string[]]$DnsNames) {
    foreach ($dnsName in $DnsNames) {
        if ($dnsName -eq $Name) { return $true }
        if ($dnsName.StartsWith('*.') -and $Name -match ('^[^.]+' + [regex]::Escape($dnsName.Substring(1)) + '$')) {
            return $true
        }
    }
    return $false
}

$service = Get-Service -Name lithnetams -ErrorAction SilentlyContinue
$base = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Lithnet\Access Manager Service' -ErrorAction SilentlyContinue

$result = [ordered]@{
    computer             = $env:COMPUTERNAME
    installed            = [bool]$service
    version              = if ($base) { [string]$base.Version } else { $null }
    service_status       = if ($service) { [string]$service.Status } else { 'NotInstalled' }
    web_app_enabled      = $null
    agent_access_enabled = $null
    external_host_name   = $null
    error                = $null
    binding_thumbprint   = $null
    certificate_covers   = $null
}

if ($service) {
    try {
        Import-Module LithnetAccessManager
        $hostConfig = Get-AmsHostConfig
        $result.web_app_enabled = [bool]$hostConfig.WebAppEnabled
        # UNCONFIRMED property names: version 3 reports AgentAccessEnabled and ExternalHostname, version 2 ApiEnabled
        # and ApiHostname (the names of Set-AmsHostConfig's parameters in each version).
        if ($null -ne $hostConfig.AgentAccessEnabled) {
            $result.agent_access_enabled = [bool]$hostConfig.AgentAccessEnabled
        } elseif ($null -ne $hostConfig.ApiEnabled) {
            $result.agent_access_enabled = [bool]$hostConfig.ApiEnabled
        }
        if ($hostConfig.ExternalHostname) {
            $result.external_host_name = [string]$hostConfig.ExternalHostname
        } elseif ($hostConfig.ApiHostname) {
            $result.external_host_name = [string]$hostConfig.ApiHostname
        }
    } catch {
        $result.error = $_.Exception.Message
    }
}

# HTTP.sys binding of the port: netsh prints a "Certificate Hash" line for the ip:port.
$netsh = & netsh.exe http show sslcert ('ipport=0.0.0.0:{0}' -f $Port) 2>&1
foreach ($line in @($netsh)) {
    if ([string]$line -match '^\s*Certificate Hash\s*:\s*(?<hash>[0-9A-Fa-f]+)\s*$') {
        $result.binding_thumbprint = $Matches['hash'].ToUpperInvariant()
    }
}
if ($result.binding_thumbprint -and $ExternalHostName) {
    $cert = Get-ChildItem -Path Cert:\LocalMachine\My |
        Where-Object { $_.Thumbprint -eq $result.binding_thumbprint } | Select-Object -First 1
    if ($cert) {
        $dnsNames = @($cert.DnsNameList | ForEach-Object { [string]$_.Unicode })
        $result.certificate_covers = Test-NameCovered $ExternalHostName $dnsNames
    }
}

[PSCustomObject]$result | ConvertTo-Json -Compress -Depth 8
