# Test-only: waits quietly for a number of seconds.
param(
    [double]$Seconds = 1
)

Start-Sleep -Milliseconds ([int]($Seconds * 1000))
[PSCustomObject]@{ waited = $Seconds } | ConvertTo-Json -Compress
