# Applies the host configuration with Set-AmsHostConfig using the installed major version's own parameters, then restarts
# the service if it was running. The connection string is not validated here: that would sign in to SQL Server as the
# operator from a WinRM session (the second hop); the service signs in as its own account when it starts.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][bool]$WebAppEnabled,
    [Parameter(Mandatory)][bool]$ApiEnabled,
    [Parameter(Mandatory)][string]$HostName,
    [Parameter(Mandatory)][string]$ConnectionString
)

$ErrorActionPreference = 'Stop'

$version = [string](Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Lithnet\Access Manager Service' -Name Version).Version
$major = [int]($version -split '\.')[0]
Import-Module LithnetAccessManager
if ($major -ge 3) {
    # Version 3 renamed the API for agents "agent access" and the API host name "external host name".
    Set-AmsHostConfig -WebAppEnabled $WebAppEnabled -AgentAccessEnabled $ApiEnabled -ExternalHostname $HostName `
        -ConnectionString $ConnectionString -SkipConnectionStringValidation
} else {
    Set-AmsHostConfig -WebAppEnabled $WebAppEnabled -ApiEnabled $ApiEnabled -ApiHostname $HostName `
        -ConnectionString $ConnectionString -SkipConnectionStringValidation
}

$service = Get-Service -Name lithnetams
$restarted = $false
if ([string]$service.Status -eq 'Running') {
    Write-Progress -Activity 'Access Manager service' -Status 'Restarting to apply the host configuration' -PercentComplete 50
    Restart-Service -Name lithnetams
    $restarted = $true
}

[PSCustomObject]@{
    version         = $version
    web_app_enabled = $WebAppEnabled
    api_enabled     = $ApiEnabled
    host_name       = $HostName
    restarted       = $restarted
} | ConvertTo-Json -Compress -Depth 8
