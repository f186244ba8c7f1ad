# Finds the cluster role that runs the Access Manager service (a Generic Service resource for lithnetams) and what uses the requested name.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [ValidatePattern('^[A-Za-z0-9_.-]+$')][string]$ServiceName = 'lithnetams'
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters

function Get-GroupFacts($Group) {
    $resources = @($Group | Get-ClusterResource)
    $ip = $resources | Where-Object { $_.ResourceType.Name -eq 'IP Address' } | Select-Object -First 1
    [ordered]@{
        group     = [string]$Group.Name
        owner     = [string]$Group.OwnerNode.Name
        state     = [string]$Group.State
        address   = if ($ip) { [string]($ip | Get-ClusterParameter -Name Address).Value } else { $null }
        resources = @($resources | ForEach-Object {
                [ordered]@{ name = [string]$_.Name; type = [string]$_.ResourceType.Name; state = [string]$_.State }
            })
    }
}

$roles = @(foreach ($resource in Get-ClusterResource | Where-Object { $_.ResourceType.Name -eq 'Generic Service' }) {
        $service = ($resource | Get-ClusterParameter -Name ServiceName).Value
        if ($service -eq $ServiceName) {
            $facts = Get-GroupFacts (Get-ClusterGroup -Name ([string]$resource.OwnerGroup))
            $facts.resource = [string]$resource.Name
            $facts.resource_state = [string]$resource.State
            $facts
        }
    })

$named = Get-ClusterGroup | Where-Object { $_.Name -eq $Name } | Select-Object -First 1

[PSCustomObject]@{
    service_name = $ServiceName
    roles        = $roles
    name_in_use  = if ($named) { Get-GroupFacts $named } else { $null }
    nodes        = @(Get-ClusterNode | ForEach-Object { [ordered]@{ name = $_.Name; state = [string]$_.State } })
} | ConvertTo-Json -Compress -Depth 8
