param(
    [string]$Key,
    [string]$Value
)

$ErrorActionPreference = 'Stop'
Set-Content -Path "C:\lab\$Key.txt" -Value $Value
[PSCustomObject]@{ key = $Key; value = $Value } | ConvertTo-Json -Compress
