# Test-only: a slow state change that reports progress, then leaves a marker file.
param(
    [double]$Seconds = 0,
    [SecureString]$Secret,
    [switch]$EchoSecret
)

$ErrorActionPreference = 'Stop'
Write-Information -MessageData "applying on $env:COMPUTERNAME"
$deadline = (Get-Date).AddSeconds($Seconds)
while ((Get-Date) -lt $deadline) {
    Write-Progress -Activity 'Apply' -Status 'working' -PercentComplete 50
    Start-Sleep -Milliseconds 500
}
New-Item -ItemType Directory -Force -Path 'C:\ProgramData\AmswTest' | Out-Null
Set-Content -LiteralPath 'C:\ProgramData\AmswTest\applied.txt' -Value 'applied'
[PSCustomObject]@{ applied = $true } | ConvertTo-Json -Compress
