# Brings an existing Access Manager cluster role online again with Start-ClusterGroup (after its cause was fixed) and reports its state.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [ValidateRange(5, 600)][int]$TimeoutSeconds = 60
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$started = Get-Date
$startError = $null
Write-Progress -Activity ('Start-ClusterGroup {0}' -f $Name) -Status 'Starting' -PercentComplete 10
try {
    Start-ClusterGroup -Name $Name -Wait $TimeoutSeconds | Out-Null
} catch {
    $startError = $_.Exception.Message
}
$group = Get-ClusterGroup -Name $Name

[PSCustomObject]@{
    group           = [string]$group.Name
    owner           = [string]$group.OwnerNode.Name
    state           = [string]$group.State
    error           = $startError
    elapsed_seconds = [math]::Round(((Get-Date) - $started).TotalSeconds, 1)
} | ConvertTo-Json -Compress -Depth 8
