# Test-only: writes numbered output lines ('line 0001', ...) evenly over a few seconds, then its result.
param(
    [int]$Count = 40,
    [double]$Seconds = 4
)

for ($i = 1; $i -le $Count; $i++) {
    Write-Output ('line {0:d4}' -f $i)
    Start-Sleep -Milliseconds ([int](1000 * $Seconds / $Count))
}
[PSCustomObject]@{ lines = $Count } | ConvertTo-Json -Compress
