param(
    [string]$Reason = 'broken on purpose'
)

throw "lab_fail: $Reason"
