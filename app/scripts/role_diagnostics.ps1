# Gathers recent cluster log lines about the Access Manager role and the latest 'Lithnet Access Manager' events on this node.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [ValidateRange(1, 1440)][int]$Minutes = 10,
    [ValidateRange(1, 500)][int]$MaxLines = 60,
    [ValidateRange(1, 200)][int]$MaxEvents = 20
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$destination = Join-Path $env:SystemRoot ('Temp\AmsClusterLog-' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $destination | Out-Null
$lines = @()
$logError = $null
try {
    Write-Progress -Activity 'Get-ClusterLog' -Status ('Last {0} minutes on {1}' -f $Minutes, $env:COMPUTERNAME) -PercentComplete 20
    $logs = Get-ClusterLog -Node $env:COMPUTERNAME -TimeSpan $Minutes -UseLocalTime -Destination $destination
    $patterns = @($Name, 'lithnetams', 'Lithnet Access Manager')
    $lines = @(Select-String -LiteralPath @($logs)[0].FullName -Pattern $patterns -SimpleMatch |
            Select-Object -Last $MaxLines | ForEach-Object { $_.Line })
} catch {
    $logError = $_.Exception.Message
} finally {
    Remove-Item -LiteralPath $destination -Recurse -Force -ErrorAction SilentlyContinue
}

Write-Progress -Activity 'Event log' -Status 'Lithnet Access Manager' -PercentComplete 80
$events = @(Get-WinEvent -LogName 'Lithnet Access Manager' -MaxEvents $MaxEvents -ErrorAction SilentlyContinue |
        ForEach-Object {
            [ordered]@{
                time    = $_.TimeCreated.ToUniversalTime().ToString('o')
                level   = [string]$_.LevelDisplayName
                id      = $_.Id
                message = [string]$_.Message
            }
        })

[PSCustomObject]@{
    computer          = $env:COMPUTERNAME
    cluster_log       = $lines
    cluster_log_error = $logError
    events            = $events
} | ConvertTo-Json -Compress -Depth 8
