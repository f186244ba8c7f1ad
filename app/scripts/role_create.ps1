# Creates the Generic Service cluster role for lithnetams with its client access point (no storage, no registry checkpoint). It reaches the other nodes and AD: run it by the operator route (CredSSP or task_run).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [Parameter(Mandatory)][ipaddress]$StaticAddress,
    [ValidatePattern('^[A-Za-z0-9_.-]+$')][string]$ServiceName = 'lithnetams'
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$started = Get-Date
Write-Progress -Activity 'Add-ClusterGenericServiceRole' -Status ('Creating role {0}' -f $Name) -PercentComplete 10
$roleWarnings = @()
$group = Add-ClusterGenericServiceRole -ServiceName $ServiceName -Name $Name `
    -StaticAddress $StaticAddress.IPAddressToString -WarningVariable roleWarnings

[PSCustomObject]@{
    group           = [string]$group.Name
    owner           = [string]$group.OwnerNode.Name
    state           = [string]$group.State
    warnings        = @($roleWarnings | ForEach-Object { [string]$_.Message })
    elapsed_seconds = [int]((Get-Date) - $started).TotalSeconds
} | ConvertTo-Json -Compress -Depth 8
