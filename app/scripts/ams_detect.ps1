# Reads how Access Manager is installed and configured on this node: service, version, account, database, TLS binding, host config and license.
[CmdletBinding()]
param(
    [ValidateRange(1, 65535)][int]$Port = 443,
    [ValidatePattern('^([0-9A-Fa-f]{40})?$')][string]$Thumbprint = '',
    [string[]]$HostName = @()
)

$ErrorActionPreference = 'Stop'

$baseKey = 'HKLM:\SOFTWARE\Lithnet\Access Manager Service'
$paramsKey = Join-Path $baseKey 'Parameters'
$serviceKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\lithnetams'
$uninstallKeys = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'

function Get-Values([string]$Path) {
    Get-ItemProperty -LiteralPath $Path -ErrorAction SilentlyContinue
}

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
$base = Get-Values $baseKey
$parameters = Get-Values $paramsKey
$serviceValues = Get-Values $serviceKey
$product = Get-ItemProperty -Path $uninstallKeys -ErrorAction SilentlyContinue |
    Where-Object { $_.DisplayName -eq 'Lithnet Access Manager Service' } | Select-Object -First 1

$result = [ordered]@{
    computer          = $env:COMPUTERNAME
    installed         = [bool]$service
    service           = $null
    version           = if ($base) { [string]$base.Version } else { $null }
    uninstall_version = if ($product) { [string]$product.DisplayVersion } else { $null }
    install_path      = if ($base) { [string]$base.Path } else { $null }
    configured        = if ($base -and $null -ne $base.Configured) { [int]$base.Configured } else { 0 }
    connection_string = if ($parameters) { [string]$parameters.ConnectionString } else { $null }
    binding           = [ordered]@{ port = $Port; present = $false; thumbprint = $null; app_id = $null }
    certificate       = $null
    host_config       = [ordered]@{ available = $false; web_app_enabled = $null; api_enabled = $null; error = $null }
    license           = $null
}

if ($service) {
    $result.service = [ordered]@{
        status       = [string]$service.Status
        start_type   = [string]$service.StartType
        account      = if ($serviceValues) { [string]$serviceValues.ObjectName } else { $null }
        display_name = $service.DisplayName
    }
}

# HTTP.sys binding: netsh prints "Certificate Hash" and "Application ID" lines for the ip:port.
$netsh = & netsh.exe http show sslcert ('ipport=0.0.0.0:{0}' -f $Port) 2>&1
foreach ($line in @($netsh)) {
    if ([string]$line -match '^\s*Certificate Hash\s*:\s*(?<hash>[0-9A-Fa-f]+)\s*$') {
        $result.binding.present = $true
        $result.binding.thumbprint = $Matches['hash'].ToUpperInvariant()
    } elseif ([string]$line -match '^\s*Application ID\s*:\s*(?<appid>\{[0-9A-Fa-f-]+\})\s*$') {
        $result.binding.app_id = $Matches['appid'].ToUpperInvariant()
    }
}

if ($Thumbprint) {
    $cert = Get-ChildItem -Path Cert:\LocalMachine\My | Where-Object { $_.Thumbprint -eq $Thumbprint } |
        Select-Object -First 1
    $result.certificate = [ordered]@{ thumbprint = $Thumbprint.ToUpperInvariant(); present = [bool]$cert }
    if ($cert) {
        $dnsNames = @($cert.DnsNameList | ForEach-Object { [string]$_.Unicode })
        $result.certificate.subject = $cert.Subject
        $result.certificate.not_after = $cert.NotAfter.ToUniversalTime().ToString('o')
        $result.certificate.expired = $cert.NotAfter -lt (Get-Date)
        $result.certificate.has_private_key = $cert.HasPrivateKey
        $result.certificate.dns_names = $dnsNames
        $result.certificate.covers = [ordered]@{}
        foreach ($name in $HostName) {
            $result.certificate.covers[$name] = Test-NameCovered $name $dnsNames
        }
    }
}

if ($service) {
    try {
        Import-Module LithnetAccessManager
        $hostConfig = Get-AmsHostConfig
        $result.host_config.available = $true
        $result.host_config.web_app_enabled = [bool]$hostConfig.WebAppEnabled
        # UNCONFIRMED property names: v2 reports ApiEnabled, v3 AgentAccessEnabled.
        if ($null -ne $hostConfig.ApiEnabled) {
            $result.host_config.api_enabled = [bool]$hostConfig.ApiEnabled
        } elseif ($null -ne $hostConfig.AgentAccessEnabled) {
            $result.host_config.api_enabled = [bool]$hostConfig.AgentAccessEnabled
        }
    } catch {
        $result.host_config.error = $_.Exception.Message
    }
}

# The license is entered in the configuration tool. Where it is kept differs between versions: the service reads
# Parameters\LicenseData, then Licensing:Data in appsettings.json (Lithnet's public source, 2.0); Lithnet's docs for 2.1
# and later keep it in the database, which this session cannot read (second hop). Not found is "unknown", never "none".
$result.license = [ordered]@{ present = $null; source = $null; checked = @('Parameters\LicenseData') }
if ($parameters -and $parameters.LicenseData) {
    $result.license.present = $true
    $result.license.source = 'registry'
} elseif ($parameters -and $parameters.ConfigPath) {
    $settingsFile = Join-Path ([string]$parameters.ConfigPath) 'appsettings.json'
    $result.license.checked += $settingsFile
    if (Test-Path -LiteralPath $settingsFile) {
        $appSettings = Get-Content -LiteralPath $settingsFile -Raw | ConvertFrom-Json
        if ($appSettings.Licensing -and $appSettings.Licensing.Data) {
            $result.license.present = $true
            $result.license.source = 'appsettings.json'
        }
    }
}

[PSCustomObject]$result | ConvertTo-Json -Compress -Depth 8
