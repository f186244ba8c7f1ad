# Waits up to TimeoutSeconds for the Access Manager cluster role to reach Online (or Failed), reporting progress.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [ValidateRange(5, 600)][int]$TimeoutSeconds = 60
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$started = Get-Date
do {
    $group = Get-ClusterGroup -Name $Name
    $state = [string]$group.State
    $elapsed = ((Get-Date) - $started).TotalSeconds
    $percent = [int][Math]::Min(99, 100 * $elapsed / $TimeoutSeconds)
    Write-Progress -Activity ('Cluster role {0}' -f $Name) -Status ('{0} on {1}' -f $state, $group.OwnerNode.Name) -PercentComplete $percent
    if ($state -in 'Online', 'Failed') {
        break
    }
    Start-Sleep -Seconds 2
} while ($elapsed -lt $TimeoutSeconds)

[PSCustomObject]@{
    group           = [string]$group.Name
    state           = $state
    owner           = [string]$group.OwnerNode.Name
    timed_out       = ($state -notin 'Online', 'Failed')
    elapsed_seconds = [int]((Get-Date) - $started).TotalSeconds
    resources       = @($group | Get-ClusterResource | ForEach-Object {
            [ordered]@{ name = [string]$_.Name; type = [string]$_.ResourceType.Name; state = [string]$_.State }
        })
} | ConvertTo-Json -Compress -Depth 8
