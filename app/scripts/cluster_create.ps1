# Creates the failover cluster with New-Cluster and no shared storage; it reaches the other nodes and AD, so it runs by the operator route (CredSSP or task_run).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [Parameter(Mandatory)][ValidateCount(1, 64)][string[]]$Node,
    [Parameter(Mandatory)][ipaddress]$StaticAddress
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$started = Get-Date
Write-Progress -Activity 'New-Cluster' -Status ('Creating cluster {0} on {1}' -f $Name, ($Node -join ', ')) -PercentComplete 10
$createWarnings = @()
$cluster = New-Cluster -Name $Name -Node $Node -StaticAddress $StaticAddress.IPAddressToString -NoStorage `
    -WarningVariable createWarnings
Write-Progress -Activity 'New-Cluster' -Status 'Reading the new cluster' -PercentComplete 95

[PSCustomObject]@{
    name            = [string]$cluster.Name
    nodes           = @(Get-ClusterNode -Cluster $cluster.Name | ForEach-Object {
            [ordered]@{ name = $_.Name; state = [string]$_.State }
        })
    warnings        = @($createWarnings | ForEach-Object { [string]$_.Message })
    elapsed_seconds = [int]((Get-Date) - $started).TotalSeconds
} | ConvertTo-Json -Compress -Depth 8
