# Turns the Access Manager web app and API on or off with Set-AmsHostConfig, then restarts the service if it was running.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][bool]$WebAppEnabled,
    [Parameter(Mandatory)][bool]$ApiEnabled
)

$ErrorActionPreference = 'Stop'

Import-Module LithnetAccessManager
$command = Get-Command -Name Set-AmsHostConfig
$settings = @{ WebAppEnabled = $WebAppEnabled }
$apiApplied = $false
if ($command.Parameters.ContainsKey('ApiEnabled')) {
    $settings.ApiEnabled = $ApiEnabled
    $apiApplied = $true
} else {
    Write-Warning 'This Access Manager version has no ApiEnabled host setting; only the web app setting was applied.'
}
Set-AmsHostConfig @settings

$service = Get-Service -Name lithnetams
$restarted = $false
if ($service.Status -eq 'Running') {
    Write-Progress -Activity 'Access Manager service' -Status 'Restarting to apply the host configuration' -PercentComplete 50
    Restart-Service -Name lithnetams
    $restarted = $true
}

[PSCustomObject]@{
    web_app_enabled = $WebAppEnabled
    api_enabled     = if ($apiApplied) { $ApiEnabled } else { $null }
    restarted       = $restarted
} | ConvertTo-Json -Compress -Depth 8
