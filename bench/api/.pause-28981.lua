function delay()
  return 12
end
