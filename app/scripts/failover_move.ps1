# Moves the Access Manager cluster role to one node with Move-ClusterGroup and reports where it ended up and in what state.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Node,
    [ValidateRange(10, 900)][int]$WaitSeconds = 120
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$started = Get-Date
$moveError = $null
Write-Progress -Activity ('Move-ClusterGroup {0}' -f $Name) -Status ('To {0}' -f $Node) -PercentComplete 10
try {
    Move-ClusterGroup -Name $Name -Node $Node -Wait $WaitSeconds | Out-Null
} catch {
    $moveError = $_.Exception.Message
}
$group = Get-ClusterGroup -Name $Name

[PSCustomObject]@{
    group           = [string]$group.Name
    target          = $Node
    owner           = [string]$group.OwnerNode.Name
    state           = [string]$group.State
    error           = $moveError
    elapsed_seconds = [math]::Round(((Get-Date) - $started).TotalSeconds, 1)
} | ConvertTo-Json -Compress -Depth 8
