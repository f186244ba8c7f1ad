param(
    [Parameter(Mandatory = $true)]
    [string]$Name,

    [int]$Count = 1,

    [switch]$Shout
)

$ErrorActionPreference = 'Stop'
$greeting = "Hello $Name" * $Count
if ($Shout) { $greeting = $greeting.ToUpper() }
[PSCustomObject]@{ greeting = $greeting; count = $Count } | ConvertTo-Json -Compress -Depth 8
