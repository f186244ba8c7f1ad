# Test-only: reports whether exec_apply already ran on this node (detection before change).
param()

$ErrorActionPreference = 'Stop'
$marker = 'C:\ProgramData\AmswTest\applied.txt'
[PSCustomObject]@{ applied = (Test-Path -LiteralPath $marker) } | ConvertTo-Json -Compress
